using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using Xunit.Abstractions;

namespace Concurrency.Primitives.Tests.Stress;

/// <summary>
/// Group start/stop cycles over 16 gates with random dependencies and random start, run and stop faults, under both fault
/// policies. At every start and stop delegate: a gate's start and stop alternate, a gate starts only while every gate it
/// depends on is up (started, not stopping), and stops only while no gate that depends on it is up. After every cycle:
/// nothing is up and the group is at rest.
/// </summary>
public sealed class LifecycleGroupStressTests
{
    private const int Gates = 16;
    private const int CyclesPerGroup = 50;
    private readonly ITestOutputHelper _output;

    public LifecycleGroupStressTests(ITestOutputHelper output) => _output = output;

    /// <summary>CI runs the base count; CONCURRENCY_PRIMITIVES_SOAK=1 runs 100 times more, CONCURRENCY_PRIMITIVES_SCALE=n n times more.</summary>
    public static int BaseCycles => 100_000;

    [Fact]
    public async Task RandomStartStopCycles_WithFaults_KeepTheDependencyOrder()
    {
        var target = (long)BaseCycles * StressSettings.Scale;
        var seed = StressSettings.Seed;
        var totals = new Totals();
        var clock = Stopwatch.StartNew();
        var groups = await StressSettings.RunRoundsAsync(
            seed, target, () => Volatile.Read(ref totals.Cycles), roundSeed => RunGroupAsync(roundSeed, totals), TimeSpan.FromSeconds(60));

        _output.WriteLine(
            $"[stress] LifecycleGroup: {totals.Cycles} cycles over {Gates} gates in {groups} groups (seed {seed}) in {clock.Elapsed.TotalSeconds:0.0} s: " +
            $"{totals.Starts} group starts, {totals.FailedStarts} failed group starts, {totals.GateStarts} gate starts, {totals.StartFaults} start faults, " +
            $"{totals.RunFaults} run faults, {totals.StopFaults} stop faults, {totals.StopRetries} resumed stops, 0 invariant violations");
        totals.Violations.Should().Be(0, totals.LastViolation);
        totals.Starts.Should().BeGreaterThan(0);
        totals.FailedStarts.Should().BeGreaterThan(0);
        totals.RunFaults.Should().BeGreaterThan(0);
        totals.StopFaults.Should().BeGreaterThan(0);
    }

    private static async Task RunGroupAsync(int seed, Totals totals)
    {
        var random = new Random(seed);
        var dependsOn = new string[Gates][];
        for (var i = 0; i < Gates; i++)
        {
            dependsOn[i] = Enumerable.Range(0, i).Where(_ => random.Next(i + 1) < 2).Select(Name).ToArray();
        }

        var ledger = new Ledger(dependsOn, totals);
        var policy = random.Next(2) == 0 ? LifecycleGroupFaultPolicy.StopGroup : LifecycleGroupFaultPolicy.Isolate;
        var group = new LifecycleGroup(new LifecycleGroupOptions { AllowRestart = true, OnGateFault = policy });
        for (var i = 0; i < Gates; i++)
        {
            var index = i;
            group.Add(NewGate(index, ledger, random), dependsOn[index]);
        }

        for (var cycle = 0; cycle < CyclesPerGroup; cycle++)
        {
            try
            {
                await group.StartAsync();
                Interlocked.Increment(ref totals.Starts);
            }
            catch (InvalidOperationException exception) when (Expected(exception))
            {
                Interlocked.Increment(ref totals.FailedStarts);
            }

            if (random.Next(2) == 0)
            {
                await Task.Yield(); // let runs fault while the group runs
            }

            for (var attempt = 0; ; attempt++)
            {
                try
                {
                    await group.StopAsync();
                    break;
                }
                catch (Exception exception) when (Expected(exception) && attempt < 100)
                {
                    Interlocked.Increment(ref totals.StopRetries);
                }
            }

            ledger.Check(group.State is LifecycleState.Stopped or LifecycleState.StartFailed or LifecycleState.NotStarted, $"the group is at rest after its stop, not {group.State}");
            ledger.CheckNothingUp();
            Interlocked.Increment(ref totals.Cycles);
        }
    }

    private static LifecycleGate NewGate(int index, Ledger ledger, Random random)
    {
        var name = Name(index);
        return new LifecycleGate(
            start: async (_, _) =>
            {
                ledger.StartBegins(index);
                await Task.Yield();
                if (Chance(random, 100))
                {
                    ledger.StartFails(index);
                    throw new InvalidOperationException("start fault");
                }

                ledger.StartSucceeds(index);
            },
            run: async token =>
            {
                await Task.Yield();
                if (Chance(random, 400))
                {
                    Interlocked.Increment(ref ledger.Totals.RunFaults);
                    throw new InvalidOperationException("run fault");
                }

                var cancelled = Bounded.NewGate();
                using (token.Register(() => cancelled.TrySetResult()))
                {
                    await cancelled.Task;
                }
            },
            stop: async _ =>
            {
                ledger.StopBegins(index);
                await Task.Yield();
                if (Chance(random, 100))
                {
                    ledger.StopFails(index);
                    throw new InvalidOperationException("stop fault");
                }

                ledger.StopSucceeds(index);
            },
            options: new LifecycleGateOptions { Name = name, AllowRestart = true });
    }

    private static bool Expected(Exception exception) =>
        exception is InvalidOperationException { Message: "start fault" or "run fault" or "stop fault" }
        || (exception is AggregateException aggregate && aggregate.InnerExceptions.All(Expected));

    private static bool Chance(Random random, int oneIn)
    {
        lock (random)
        {
            return random.Next(oneIn) == 0;
        }
    }

    private static string Name(int index) => "g" + index;

    private sealed class Totals
    {
        public long Cycles;
        public long Starts;
        public long FailedStarts;
        public long GateStarts;
        public long StartFaults;
        public long RunFaults;
        public long StopFaults;
        public long StopRetries;
        public long Violations;
        public string? LastViolation;
    }

    /// <summary>Per gate: down, starting, up or stopping; every transition checked against its dependencies and dependents.</summary>
    private sealed class Ledger
    {
        private const int Down = 0;
        private const int Starting = 1;
        private const int Up = 2;
        private const int Stopping = 3;

        private readonly object _lock = new();
        private readonly int[] _state = new int[Gates];
        private readonly int[][] _dependencies;
        private readonly List<int>[] _dependents;

        public Ledger(string[][] dependsOn, Totals totals)
        {
            Totals = totals;
            _dependencies = dependsOn.Select(names => names.Select(n => int.Parse(n.AsSpan(1), System.Globalization.CultureInfo.InvariantCulture)).ToArray()).ToArray();
            _dependents = Enumerable.Range(0, Gates).Select(_ => new List<int>()).ToArray();
            for (var i = 0; i < Gates; i++)
            {
                foreach (var dependency in _dependencies[i])
                {
                    _dependents[dependency].Add(i);
                }
            }
        }

        public Totals Totals { get; }

        public void StartBegins(int gate)
        {
            lock (_lock)
            {
                Check(_state[gate] == Down, $"{Name(gate)} started while {Describe(_state[gate])}: starts and stops must alternate");
                foreach (var dependency in _dependencies[gate])
                {
                    Check(_state[dependency] == Up, $"{Name(gate)} started while its dependency {Name(dependency)} was {Describe(_state[dependency])}");
                }

                _state[gate] = Starting;
                Interlocked.Increment(ref Totals.GateStarts);
            }
        }

        public void StartSucceeds(int gate) => Move(gate, Starting, Up);

        public void StartFails(int gate)
        {
            Move(gate, Starting, Down);
            Interlocked.Increment(ref Totals.StartFaults);
        }

        public void StopBegins(int gate)
        {
            lock (_lock)
            {
                Check(_state[gate] == Up, $"{Name(gate)}'s stop ran while it was {Describe(_state[gate])}");
                foreach (var dependent in _dependents[gate])
                {
                    Check(_state[dependent] == Down, $"{Name(gate)} stopped while {Name(dependent)}, which depends on it, was {Describe(_state[dependent])}");
                }

                _state[gate] = Stopping;
            }
        }

        public void StopSucceeds(int gate) => Move(gate, Stopping, Down);

        public void StopFails(int gate)
        {
            Move(gate, Stopping, Up); // still holds what it started: its dependencies must stay up
            Interlocked.Increment(ref Totals.StopFaults);
        }

        public void CheckNothingUp()
        {
            lock (_lock)
            {
                for (var i = 0; i < Gates; i++)
                {
                    Check(_state[i] == Down, $"{Name(i)} is {Describe(_state[i])} after the group stopped");
                }
            }
        }

        public void Check(bool condition, string violation)
        {
            if (!condition)
            {
                Interlocked.Increment(ref Totals.Violations);
                Totals.LastViolation = violation;
            }
        }

        private void Move(int gate, int from, int to)
        {
            lock (_lock)
            {
                Check(_state[gate] == from, $"{Name(gate)} moved to {Describe(to)} from {Describe(_state[gate])}");
                _state[gate] = to;
            }
        }

        private static string Describe(int state) => state switch
        {
            Down => "down",
            Starting => "starting",
            Up => "up",
            _ => "stopping",
        };
    }
}
