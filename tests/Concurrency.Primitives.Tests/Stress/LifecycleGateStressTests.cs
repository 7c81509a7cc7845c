using System;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using Xunit.Abstractions;

namespace Concurrency.Primitives.Tests.Stress;

/// <summary>
/// Many threads call start, stop and dispose at random, with random start, run and stop failures and cancelled
/// waits. After every cycle: the start and stop delegates alternated, no stop step ran while the run was live,
/// every caller returned, and the disposed gate ended stopped.
/// </summary>
public sealed class LifecycleGateStressTests
{
    private const int BaseOperations = 100_000;
    private const int OperationsPerCycle = 24;
    private readonly ITestOutputHelper _output;

    public LifecycleGateStressTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public async Task RandomStartStopDispose_KeepsTheLifecycleInvariants()
    {
        var target = BaseOperations * StressSettings.Scale;
        var seed = StressSettings.Seed;
        var totals = new Totals();
        var clock = Stopwatch.StartNew();
        var cycles = await StressSettings.RunRoundsAsync(
            seed, target, () => Volatile.Read(ref totals.Operations), cycleSeed => RunCycleAsync(cycleSeed, totals), TimeSpan.FromSeconds(60));

        _output.WriteLine(
            $"[stress] LifecycleGate: {totals.Operations} operations in {cycles} cycles (seed {seed}) in {clock.Elapsed.TotalSeconds:0.0} s: " +
            $"{totals.Starts} starts, {totals.Stops} stops, {totals.StartFailures} failed starts, {totals.StopFailures} failed stops, " +
            $"{totals.RunFaults} run faults, {totals.Cancelled} cancelled waits, 0 invariant violations");
        totals.Starts.Should().BeGreaterThan(1000);
        totals.StopFailures.Should().BeGreaterThan(0);
    }

    private static async Task RunCycleAsync(int seed, Totals totals)
    {
        var random = new Random(seed);
        var ledger = new Ledger();
        var allowRestart = random.Next(4) != 0;
        var gate = new LifecycleGate(
            start: async (context, token) =>
            {
                ledger.StartBegins();
                context.OnStop(_ =>
                {
                    ledger.ResourceReleased();
                    return Task.CompletedTask;
                }, "resource");
                await Task.Yield();
                if (Chance(8))
                {
                    ledger.StartFails();
                    throw new InvalidOperationException("start fault");
                }
            },
            run: async token =>
            {
                ledger.RunEnters();
                try
                {
                    await Task.Yield();
                    if (Chance(10))
                    {
                        Interlocked.Increment(ref ledger.RunFaults);
                        throw new InvalidOperationException("run fault");
                    }

                    var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    using (token.Register(() => cancelled.TrySetResult()))
                    {
                        await cancelled.Task;
                    }
                }
                finally
                {
                    ledger.RunReturns();
                }
            },
            stop: async _ =>
            {
                await Task.Yield();
                ledger.StopAttempted();
                if (Chance(8))
                {
                    throw new InvalidOperationException("stop fault");
                }

                ledger.Stopped();
            },
            options: new LifecycleGateOptions { AllowRestart = allowRestart });

        var workers = Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            var local = new Random(seed + w + 1);
            for (var i = 0; i < OperationsPerCycle / 4; i++)
            {
                Interlocked.Increment(ref totals.Operations);
                using var cancel = new CancellationTokenSource();
                var token = local.Next(6) == 0 ? cancel.Token : CancellationToken.None;
                try
                {
                    var pick = local.Next(40);
                    var call = pick == 0 ? DisposeAsBool(gate) : pick < 21 ? gate.StartAsync(token) : gate.StopAsync(token);
                    if (token.CanBeCanceled)
                    {
                        await cancel.CancelAsync();
                    }

                    await call;
                }
                catch (OperationCanceledException)
                {
                    Interlocked.Increment(ref totals.Cancelled);
                }
                catch (InvalidOperationException exception) when (exception.Message is "start fault" or "run fault" or "stop fault")
                {
                }
                catch (InvalidOperationException exception) when (exception.Message.Contains("Gate 'LifecycleGate'", StringComparison.Ordinal))
                {
                    // A start refused (restart not allowed, teardown unfinished, disposed): documented and legal.
                }
            }
        })).ToArray();

        await Task.WhenAll(workers); // every caller returned

        // Finish: a stop that failed is resumed until the teardown completes.
        await gate.DisposeAsync(); // never throws: a failed stop is logged, and resumed below
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                await gate.StopAsync();
                break;
            }
            catch (InvalidOperationException) when (attempt < 100)
            {
            }
        }

        Check(ledger.Violations == 0, ledger.LastViolation ?? "no violation");
        Check(gate.State is LifecycleState.Stopped or LifecycleState.NotStarted or LifecycleState.StartFailed, $"the disposed gate is at rest, not {gate.State}");
        Check(!ledger.Active, "every successful start was stopped");
        Check(ledger.ResourcesOutstanding == 0, "every resource acquired by a start was released");
        Interlocked.Add(ref totals.Starts, ledger.Starts);
        Interlocked.Add(ref totals.Stops, ledger.Stops);
        Interlocked.Add(ref totals.StartFailures, ledger.StartFailures);
        Interlocked.Add(ref totals.StopFailures, ledger.StopAttempts - ledger.Stops);
        Interlocked.Add(ref totals.RunFaults, ledger.RunFaults);

        bool Chance(int oneIn)
        {
            lock (random)
            {
                return random.Next(oneIn) == 0;
            }
        }
    }

    private static async Task<bool> DisposeAsBool(LifecycleGate gate)
    {
        await gate.DisposeAsync();
        return true;
    }

    private static void Check(bool condition, string invariant)
    {
        if (!condition)
        {
            throw new InvalidOperationException("LifecycleGate invariant violated: " + invariant);
        }
    }

    private sealed class Ledger
    {
        private readonly object _lock = new();
        private bool _runLive;

        public bool Active { get; private set; }

        public int Starts { get; private set; }

        public int Stops { get; private set; }

        public int StopAttempts { get; private set; }

        public int StartFailures { get; private set; }

        public int RunFaults;

        public int ResourcesOutstanding { get; private set; }

        public int Violations { get; private set; }

        public string? LastViolation { get; private set; }

        public void StartBegins()
        {
            lock (_lock)
            {
                Expect(!Active, "two starts without a stop between");
                Active = true;
                Starts++;
                ResourcesOutstanding++;
            }
        }

        public void StartFails()
        {
            lock (_lock)
            {
                // The gate releases what the failed start registered; the stop delegate must not run.
                Active = false;
                StartFailures++;
            }
        }

        public void RunEnters()
        {
            lock (_lock)
            {
                Expect(Active, "the run was invoked without a successful start");
                _runLive = true;
            }
        }

        public void RunReturns()
        {
            lock (_lock)
            {
                _runLive = false;
            }
        }

        public void StopAttempted()
        {
            lock (_lock)
            {
                StopAttempts++;
            }
        }

        public void Stopped()
        {
            lock (_lock)
            {
                Expect(Active, "the stop delegate ran for a component that was not started");
                Expect(!_runLive, "the stop delegate ran while the run was live");
                Active = false;
                Stops++;
            }
        }

        public void ResourceReleased()
        {
            lock (_lock)
            {
                Expect(!_runLive, "a resource was released while the run was live");
                ResourcesOutstanding--;
            }
        }

        private void Expect(bool condition, string violation)
        {
            if (!condition)
            {
                Violations++;
                LastViolation = violation;
            }
        }
    }

    private sealed class Totals
    {
        public long Operations;
        public long Starts;
        public long Stops;
        public long StartFailures;
        public long StopFailures;
        public long RunFaults;
        public long Cancelled;
    }
}
