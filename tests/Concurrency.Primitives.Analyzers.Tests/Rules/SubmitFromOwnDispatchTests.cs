using System.Threading.Tasks;
using VerifyCP0005 = Concurrency.Primitives.Analyzers.Tests.TestSupport.Verify<Concurrency.Primitives.Analyzers.SubmitFromOwnDispatchAnalyzer>;

namespace Concurrency.Primitives.Analyzers.Tests.Rules;

/// <summary>CP0005: a submit to a Batcher from inside its own dispatch.</summary>
public sealed class SubmitFromOwnDispatchTests
{
    private const string Usings = """
        using System;
        using System.Collections.Generic;
        using System.Threading;
        using System.Threading.Tasks;
        using Concurrency.Primitives;

        """;

    [Fact]
    public Task TheSeedShape_ADispatchThatResubmitsChildItems_IsReported() => VerifyCP0005.AnalyzerAsync(Usings + """
        class Loader
        {
            private readonly Batcher<int, int> _batcher;
            private Batcher<int, int> _other;

            public Loader()
            {
                _batcher = new Batcher<int, int>(async (batch, ct) =>
                {
                    for (var i = 0; i < batch.Count; i++)
                    {
                        var child = await {|CP0005:_batcher.SubmitAsync(batch[i] + 1, ct)|};
                        batch.TrySetResult(i, child);
                    }
                });
                _other = new Batcher<int, int>(DispatchAsync);
            }

            private async ValueTask DispatchAsync(Batch<int, int> batch, CancellationToken ct)
                => batch.TrySetResult(0, await {|CP0005:_other.SubmitAsync(1, ct)|});

            public async Task M()
            {
                Batcher<int, int> local = null;
                local = new Batcher<int, int>(async (items, ct) =>
                {
                    await Task.Run(async () => await {|CP0005:local.SubmitAsync(1)|});
                    return items;
                });
                await local.SubmitAsync(0);
            }
        }
        """);

    [Fact]
    public Task ADispatchThatSubmitsToADifferentBatcher_IsSilent() => VerifyCP0005.AnalyzerAsync(Usings + """
        class Loader
        {
            private readonly Batcher<int, int> _children = new Batcher<int, int>((items, ct) => new ValueTask<IReadOnlyList<int>>(items));
            private readonly Batcher<int, int> _parents;

            public Loader()
            {
                _parents = new Batcher<int, int>(async (batch, ct) =>
                {
                    for (var i = 0; i < batch.Count; i++) batch.TrySetResult(i, await _children.SubmitAsync(batch[i], ct));
                });
            }

            public ValueTask<int> GetAsync(int id) => _parents.SubmitAsync(id);
        }
        """);

    [Fact]
    public Task SubmittingFromOutsideTheDispatch_IsSilent() => VerifyCP0005.AnalyzerAsync(Usings + """
        class Loader
        {
            private readonly Batcher<int, int> _batcher = new Batcher<int, int>((items, ct) => new ValueTask<IReadOnlyList<int>>(items));

            public async Task<int> GetTwiceAsync(int id) => await _batcher.SubmitAsync(id) + await _batcher.SubmitAsync(id + 1);
        }
        """);

    [Fact]
    public Task ASubmitToTheSameFieldOfAnotherObject_IsSilent() => VerifyCP0005.AnalyzerAsync(Usings + """
        class Loader
        {
            private readonly Batcher<int, int> _batcher;

            public Loader(Loader upstream)
            {
                _batcher = new Batcher<int, int>(async (batch, ct) =>
                {
                    for (var i = 0; i < batch.Count; i++) batch.TrySetResult(i, await upstream._batcher.SubmitAsync(batch[i], ct));
                });
            }
        }
        """);

    [Fact]
    public Task ABatcherThatIsNotStored_IsSilent() => VerifyCP0005.AnalyzerAsync(Usings + """
        class Loader
        {
            private readonly Batcher<int, int> _children = new Batcher<int, int>((items, ct) => new ValueTask<IReadOnlyList<int>>(items));

            public void Use(Action<Batcher<int, int>> consumer)
                => consumer(new Batcher<int, int>(async (batch, ct) => batch.TrySetResult(0, await _children.SubmitAsync(0, ct))));
        }
        """);

    [Fact]
    public Task ASubmitToABatcherParameter_IsSilent() => VerifyCP0005.AnalyzerAsync(Usings + """
        class Loader
        {
            private Batcher<int, int> _batcher;

            public void Build(Batcher<int, int> next)
            {
                _batcher = new Batcher<int, int>(async (batch, ct) => batch.TrySetResult(0, await next.SubmitAsync(batch[0], ct)));
            }
        }
        """);
}
