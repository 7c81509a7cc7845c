using System;
using System.Runtime.ExceptionServices;
using System.Threading;

namespace Concurrency.Primitives.Tests.TestSupport;

/// <summary>Runs a test body on a thread of its own (whose per-thread item cache starts empty), bounded, rethrowing its failure.</summary>
public static class FreshThread
{
    public static void Run(Action body)
    {
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                body();
            }
            catch (Exception exception)
            {
                failure = exception;
            }
        });
        thread.Start();
        thread.Join(Bounded.HangLimit).Should().BeTrue("every wait in the body is bounded");
        if (failure is not null)
        {
            ExceptionDispatchInfo.Capture(failure).Throw();
        }
    }
}
