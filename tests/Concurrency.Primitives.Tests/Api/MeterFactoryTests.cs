using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics.Metrics;
using System.Linq;
using System.Reflection;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Api;

/// <summary>
/// A primitive given an <see cref="IMeterFactory"/> records on that factory's meter, and only there: two hosts in one
/// process (two factories) keep their measurements apart, and the static meter sees none of them.
/// </summary>
public sealed class MeterFactoryTests
{
    [Fact]
    public async Task EveryPrimitive_RecordsOnItsFactorysMeter_AndNowhereElse()
    {
        using var mine = new TestMeterFactory();
        using var other = new TestMeterFactory();
        var name = "factory-" + Guid.NewGuid().ToString("N");
        using var recorder = new MeasurementRecorder(name);

        var tracker = new TaskTracker(new TaskTrackerOptions { Name = name, MeterFactory = mine });
        await tracker.Go(_ => Task.CompletedTask);
        await tracker.CloseAsync().OrHang();

        var gate = new LifecycleGate(options: new LifecycleGateOptions { Name = name, MeterFactory = mine });
        var stoppedRaised = Bounded.NewGate(); // transitions are counted as their events are raised, on the pool
        gate.StateChanged += (_, e) =>
        {
            if (e.Current == LifecycleState.Stopped)
            {
                stoppedRaised.TrySetResult();
            }
        };
        await gate.StartAsync().OrHang();
        await gate.StopAsync().OrHang();
        await stoppedRaised.Task.OrHang();

        var batcher = new Batcher<int, int>(
            (batch, _) =>
            {
                batch.TrySetResult(0, batch[0]);
                return Task.CompletedTask;
            },
            new BatcherOptions { Name = name, MaxBatchSize = 1, MaxDelay = TimeSpan.Zero, MeterFactory = mine });
        (await batcher.SubmitAsync(7).AsTask().OrHang()).Should().Be(7);
        await batcher.CloseAsync().OrHang();

        var consumer = new RecordingPeerHandler<string>();
        var pump = new PeerEventPump<string, string>(consumer, new PeerEventPumpOptions { Name = name, MeterFactory = mine });
        using (var peer = pump.Connect("p"))
        {
            peer.MarkReady();
            peer.TryPost("m").Should().BeTrue();
        }

        await pump.CloseAsync().OrHang();

        var seen = recorder.Snapshot();
        seen.Should().Contain(m => m.Instrument == "concurrency.primitives.tracker.started");
        seen.Should().Contain(m => m.Instrument == "concurrency.primitives.gate.transitions");
        seen.Should().Contain(m => m.Instrument == "concurrency.primitives.batcher.batch.size");
        seen.Should().Contain(m => m.Instrument == "concurrency.primitives.pump.events");
        seen.Should().OnlyContain(m => ReferenceEquals(m.Meter, mine.Created.Single()), "every measurement goes to the factory's meter");
        other.Created.Should().BeEmpty("a factory no primitive was given creates no meter");
        mine.Created.Single().Name.Should().Be(ConcurrencyPrimitivesTelemetry.MeterName);
        mine.Created.Single().Version.Should().Be(
            typeof(TaskTracker).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()!.InformationalVersion,
            "the factory's meter carries the library's version, as the static meter does");
    }

    [Fact]
    public async Task TwoFactories_KeepTheirOwnInstruments()
    {
        using var first = new TestMeterFactory();
        using var second = new TestMeterFactory();
        var name = "two-" + Guid.NewGuid().ToString("N");
        using var recorder = new MeasurementRecorder(name);

        var one = new TaskTracker(new TaskTrackerOptions { Name = name, MeterFactory = first });
        var two = new TaskTracker(new TaskTrackerOptions { Name = name, MeterFactory = second });
        await one.Go(_ => Task.CompletedTask);
        await one.Go(_ => Task.CompletedTask);
        await two.Go(_ => Task.CompletedTask);
        await one.CloseAsync().OrHang();
        await two.CloseAsync().OrHang();

        var started = recorder.Snapshot().Where(m => m.Instrument == "concurrency.primitives.tracker.started").ToList();
        started.Count(m => ReferenceEquals(m.Meter, first.Created.Single())).Should().Be(2);
        started.Count(m => ReferenceEquals(m.Meter, second.Created.Single())).Should().Be(1);
    }

    [Fact]
    public async Task WithoutAFactory_ThePrimitiveRecordsOnTheStaticMeter()
    {
        var name = "static-" + Guid.NewGuid().ToString("N");
        using var recorder = new MeasurementRecorder(name);

        var tracker = new TaskTracker(new TaskTrackerOptions { Name = name });
        await tracker.Go(_ => Task.CompletedTask);
        await tracker.CloseAsync().OrHang();

        var started = recorder.Snapshot().Where(m => m.Instrument == "concurrency.primitives.tracker.started").ToList();
        started.Should().ContainSingle().Which.Meter.Name.Should().Be(ConcurrencyPrimitivesTelemetry.MeterName);
    }

    private sealed record Measurement(Meter Meter, string Instrument);

    /// <summary>Records every measurement of the library's instruments tagged with one primitive name.</summary>
    private sealed class MeasurementRecorder : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly ConcurrentQueue<Measurement> _seen = new();
        private readonly string _name;

        public MeasurementRecorder(string name)
        {
            _name = name;
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == ConcurrencyPrimitivesTelemetry.MeterName)
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((instrument, _, tags, _) => Record(instrument, tags));
            _listener.SetMeasurementEventCallback<int>((instrument, _, tags, _) => Record(instrument, tags));
            _listener.SetMeasurementEventCallback<double>((instrument, _, tags, _) => Record(instrument, tags));
            _listener.Start();
        }

        public IReadOnlyList<Measurement> Snapshot() => _seen.ToList();

        public void Dispose() => _listener.Dispose();

        private void Record(Instrument instrument, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            foreach (var tag in tags)
            {
                if (tag.Key.EndsWith(".name", StringComparison.Ordinal) && (string?)tag.Value == _name)
                {
                    _seen.Enqueue(new Measurement(instrument.Meter, instrument.Name));
                }
            }
        }
    }

    /// <summary>A factory that keeps one meter per name, as the host's does.</summary>
    private sealed class TestMeterFactory : IMeterFactory
    {
        private readonly List<Meter> _created = new();

        public IReadOnlyList<Meter> Created
        {
            get
            {
                lock (_created)
                {
                    return _created.ToList();
                }
            }
        }

        public Meter Create(MeterOptions options)
        {
            lock (_created)
            {
                var existing = _created.FirstOrDefault(m => m.Name == options.Name && m.Version == options.Version);
                if (existing is not null)
                {
                    return existing;
                }

                var meter = new Meter(options.Name, options.Version, options.Tags, this);
                _created.Add(meter);
                return meter;
            }
        }

        public void Dispose()
        {
            lock (_created)
            {
                foreach (var meter in _created)
                {
                    meter.Dispose();
                }
            }
        }
    }
}
