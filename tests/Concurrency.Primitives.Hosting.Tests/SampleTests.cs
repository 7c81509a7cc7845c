using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Text;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Hosting.Tests;

/// <summary>The README's worker-service sample, built as its own program, runs and exits cleanly on SIGTERM.</summary>
public sealed class SampleTests
{
    [Fact]
    public async Task TheWorkerSample_RunsItsLoop_AndExitsWithZero_WhenTheHostIsStopped()
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS())
        {
            return; // SIGTERM is how a container or systemd stops a worker; Windows has no equivalent to send here
        }

        var configuration = typeof(SampleTests).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()!.Configuration;
        var sample = Path.Combine(RepositoryRoot(), "tests", "Concurrency.Primitives.Hosting.Sample", "bin", configuration, "net10.0", "Concurrency.Primitives.Hosting.Sample.dll");
        File.Exists(sample).Should().BeTrue($"the sample is built with the tests ({sample})");
        var output = new StringBuilder();
        var loaded = Bounded.NewGate();
        using var process = new Process
        {
            StartInfo = new ProcessStartInfo(DotnetHost(), $"\"{sample}\"")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                WorkingDirectory = Path.GetDirectoryName(sample)!,
                Environment = { ["DOTNET_ENVIRONMENT"] = "Production", ["Logging__Console__FormatterName"] = "simple" },
            },
        };
        process.OutputDataReceived += (_, line) => Append(line.Data);
        process.ErrorDataReceived += (_, line) => Append(line.Data);

        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await loaded.Task.OrHang(); // the loop ran: a batch was dispatched and a feed message delivered
            using (var kill = Process.Start("kill", $"-TERM {process.Id}"))
            {
                await kill!.WaitForExitAsync().OrHang();
            }

            await process.WaitForExitAsync().OrHang();
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }

        var log = Snapshot();
        process.ExitCode.Should().Be(0, log);
        log.Should().Contain("Application is shutting down");
        log.Should().Contain("ticker disconnected", "the pump delivered the feed's Removed before the exit");
        log.Should().NotContain("fail:").And.NotContain("crit:");

        void Append(string? line)
        {
            if (line is null)
            {
                return;
            }

            lock (output)
            {
                output.AppendLine(line);
                if (output.ToString().Contains("Loaded", StringComparison.Ordinal) && output.ToString().Contains("ticker: ", StringComparison.Ordinal))
                {
                    loaded.TrySetResult();
                }
            }
        }

        string Snapshot()
        {
            lock (output)
            {
                return output.ToString();
            }
        }
    }

    private static string DotnetHost() =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host
        : Environment.ProcessPath is { } path && Path.GetFileNameWithoutExtension(path) == "dotnet" ? path
        : "dotnet";

    internal static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Concurrency.Primitives.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("The tests run from inside the repository.");
    }
}
