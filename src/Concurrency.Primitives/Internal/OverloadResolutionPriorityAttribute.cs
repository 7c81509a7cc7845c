#if !NET9_0_OR_GREATER
namespace System.Runtime.CompilerServices;

/// <summary>
/// Tells C# 13 and later which overload to prefer where two apply equally well (an <c>async</c> lambda converts to a
/// <c>Task</c>- and a <c>ValueTask</c>-returning delegate alike). The compiler recognises it by name, so this internal
/// copy serves the targets whose base library lacks it.
/// </summary>
[AttributeUsage(AttributeTargets.Method | AttributeTargets.Constructor | AttributeTargets.Property, AllowMultiple = false, Inherited = false)]
internal sealed class OverloadResolutionPriorityAttribute : Attribute
{
    public OverloadResolutionPriorityAttribute(int priority) => Priority = priority;

    public int Priority { get; }
}
#endif
