using System;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives.Internal;

/// <summary>Raises an event so that each handler runs on its own: one that throws is logged, and the handlers after it still run.</summary>
internal static class IsolatedHandlers
{
    public static void Raise<TArgs>(
        EventHandler<TArgs>? handlers,
        object sender,
        TArgs args,
        ILogger logger,
        string name,
        Action<ILogger, string, Exception> logFailure)
    {
        if (handlers is null)
        {
            return;
        }

        foreach (var handler in handlers.GetInvocationList())
        {
            try
            {
                ((EventHandler<TArgs>)handler)(sender, args);
            }
            catch (Exception failure)
            {
                logFailure(logger, name, failure);
            }
        }
    }
}
