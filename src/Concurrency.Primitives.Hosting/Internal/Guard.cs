using System;

namespace Concurrency.Primitives.Hosting.Internal;

/// <summary>Argument validation at the public boundary, the same on every target framework.</summary>
internal static class Guard
{
    public static void NotNull([ValidatedNotNull] object? value, string paramName)
    {
        if (value is null)
        {
            ThrowArgumentNull(paramName);
        }
    }

    private static void ThrowArgumentNull(string paramName) => throw new ArgumentNullException(paramName);
}

/// <summary>Tells the analyzers (CA1062) that <see cref="Guard.NotNull"/> checks its argument.</summary>
[AttributeUsage(AttributeTargets.Parameter)]
internal sealed class ValidatedNotNullAttribute : Attribute
{
}
