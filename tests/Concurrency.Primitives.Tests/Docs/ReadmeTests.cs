using System;
using System.Collections.Generic;
using System.Diagnostics.Metrics;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives.Tests.Docs;

/// <summary>The README says what the code does: every snippet compiles, every log event and instrument is listed, every link resolves.</summary>
public sealed class ReadmeTests
{
    private static readonly string Root = FindRoot();

    [Fact]
    public void EverySnippetOfTheReadme_IsCompiled_VerbatimInReadmeSnippets()
    {
        var readme = File.ReadAllText(Path.Combine(Root, "README.md"));
        // The core snippets, the Hosting package's, and the worker sample (a program of its own).
        var snippets = Normalize(string.Join("\n", new[]
        {
            Path.Combine(Root, "tests", "Concurrency.Primitives.Tests", "Docs", "ReadmeSnippets.cs"),
            Path.Combine(Root, "tests", "Concurrency.Primitives.Hosting.Tests", "Docs", "HostingReadmeSnippets.cs"),
            Path.Combine(Root, "tests", "Concurrency.Primitives.Hosting.Sample", "Program.cs"),
        }.Select(File.ReadAllText)));
        var blocks = Regex.Matches(readme, "```csharp\\n(.*?)```", RegexOptions.Singleline).Select(m => m.Groups[1].Value).ToList();

        blocks.Should().HaveCountGreaterThan(8);
        foreach (var block in blocks)
        {
            snippets.Should().Contain(Normalize(block), "each README snippet must be compiled; copy it into Docs/ReadmeSnippets.cs (or the Hosting tests' Docs/HostingReadmeSnippets.cs)");
        }
    }

    [Fact]
    public void EverySnippetOfTheEventsReadme_IsCompiled_VerbatimInEventsReadmeSnippets()
    {
        var readme = File.ReadAllText(Path.Combine(Root, "src", "Concurrency.Primitives", "Events", "README.md"));
        var snippets = Normalize(File.ReadAllText(Path.Combine(Root, "tests", "Concurrency.Primitives.Tests", "Docs", "EventsReadmeSnippets.cs")));
        var blocks = Regex.Matches(readme, "```csharp\\n(.*?)```", RegexOptions.Singleline).Select(m => m.Groups[1].Value).ToList();

        blocks.Should().HaveCount(3);
        foreach (var block in blocks)
        {
            snippets.Should().Contain(Normalize(block), "each snippet of Events/README.md must be compiled; copy it into Docs/EventsReadmeSnippets.cs");
        }
    }

    [Fact]
    public void EveryLogEvent_IsListedInTheReadme_WithItsLevel()
    {
        var readme = File.ReadAllText(Path.Combine(Root, "README.md"));
        var documented = Regex.Matches(readme, @"^\| (\d{4}) \| (\w+) \|", RegexOptions.Multiline)
            .ToDictionary(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), m => m.Groups[2].Value)
            .Where(e => e.Key < 5000) // 5xxx: the Hosting package's, checked by its own tests
            .ToDictionary(e => e.Key, e => e.Value);

        var declared = typeof(TaskTracker).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic))
            .Select(m => m.GetCustomAttribute<LoggerMessageAttribute>())
            .Where(a => a is not null)
            .ToDictionary(a => a!.EventId, a => a!.Level.ToString());

        declared.Should().HaveCountGreaterThan(30);
        documented.Should().Equal(declared, "the README's event table lists every event id with its level, and nothing else");
    }

    [Fact]
    public void EveryInstrument_IsListedInTheReadme_AndTheMeterNameIsPublic()
    {
        foreach (var type in typeof(TaskTracker).Assembly.GetTypes().Where(t => t.Name.EndsWith("Metrics", StringComparison.Ordinal) && !t.IsGenericTypeDefinition))
        {
            RuntimeHelpers.RunClassConstructor(type.TypeHandle);
        }

        var published = new HashSet<string>();
        using (var listener = new MeterListener())
        {
            listener.InstrumentPublished = (instrument, _) =>
            {
                if (instrument.Meter.Name == ConcurrencyPrimitivesTelemetry.MeterName)
                {
                    lock (published)
                    {
                        published.Add(instrument.Name);
                    }
                }
            };
            listener.Start();
        }

        var readme = File.ReadAllText(Path.Combine(Root, "README.md"));
        var documented = Regex.Matches(readme, @"^\| `(concurrency\.primitives\.[a-z_.]+)` \|", RegexOptions.Multiline).Select(m => m.Groups[1].Value).ToHashSet();

        ConcurrencyPrimitivesTelemetry.MeterName.Should().Be("Concurrency.Primitives");
        published.Should().HaveCount(24);
        documented.Should().BeEquivalentTo(published, "the README's instrument table lists every instrument, and nothing else");
    }

    [Fact]
    public void EveryRelativeLinkInTheMarkdown_ResolvesInsideTheRepository()
    {
        var files = new[] { Path.Combine(Root, "README.md") }
            .Concat(Directory.GetFiles(Path.Combine(Root, "src"), "README.md", SearchOption.AllDirectories))
            .Concat(Directory.GetFiles(Path.Combine(Root, "benchmarks"), "*.md", SearchOption.TopDirectoryOnly));
        var broken = new List<string>();
        foreach (var file in files)
        {
            foreach (Match link in Regex.Matches(File.ReadAllText(file), @"\]\(([^)#\s]+)\)"))
            {
                var target = link.Groups[1].Value;
                if (target.StartsWith("http", StringComparison.Ordinal))
                {
                    continue;
                }

                var path = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(file)!, target));
                if (!File.Exists(path) && !Directory.Exists(path))
                {
                    broken.Add($"{Path.GetRelativePath(Root, file)} -> {target}");
                }
            }
        }

        broken.Should().BeEmpty();
    }

    [Fact]
    public void EachPrimitivesFolder_HasAReadme_WithItsStoryAndInvariants()
    {
        foreach (var folder in new[] { "Concurrency.Primitives/Tracking", "Concurrency.Primitives/Lifecycle", "Concurrency.Primitives/Batching", "Concurrency.Primitives/Events", "Concurrency.Primitives.Hosting" })
        {
            var text = File.ReadAllText(Path.Combine(Root, "src", folder, "README.md"));
            text.Should().Contain("## The story").And.Contain("## Invariants");
        }
    }

    private static string Normalize(string text) =>
        string.Join("\n", text.Replace("\r", string.Empty, StringComparison.Ordinal).Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0));

    private static string FindRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Concurrency.Primitives.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("The repository root (Concurrency.Primitives.sln) was not found above " + AppContext.BaseDirectory);
    }
}
