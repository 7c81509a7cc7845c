namespace Concurrency.Primitives.Tests.TestSupport;

/// <summary>Test rows shared by the countdown-event conformance suites.</summary>
public static class CountdownRows
{
    /// <summary>
    /// The rows of dotnet/runtime's <c>CountdownEventTests.RunCountdownEventTest0_StateTrans</c>, which DotNext's
    /// <c>AsyncCountdownEventTests.CheckStateTransitions</c> copies: the initial count, how many single <c>AddCount</c>
    /// calls follow, and whether one <c>Signal(n)</c> takes the whole count at once.
    /// </summary>
    public static TheoryData<int, int, bool> StateTransitions() => new()
    {
        { 0, 0, false },
        { 1, 0, false },
        { 128, 0, false },
        { 1024 * 1024, 0, false },
        { 1, 1024, false },
        { 128, 1024, false },
        { 1024 * 1024, 1024, false },
        { 1, 0, true },
        { 128, 0, true },
        { 1024 * 1024, 0, true },
        { 1, 1024, true },
        { 128, 1024, true },
        { 1024 * 1024, 1024, true },
    };
}
