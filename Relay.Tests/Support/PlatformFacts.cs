namespace Relay.Tests.Support;

// xunit 2 has no dynamic skip (Assert.Skip is v3-only), so a test that needs a platform
// decides at discovery, in its attribute: it is reported SKIPPED with the reason, and it
// never passes without running.

/// <summary>
/// A [Fact] that runs only as root on Linux, because it builds network namespaces.
/// CI runs as root, so there it runs.
/// </summary>
public sealed class RootLabFactAttribute : FactAttribute
{
    public RootLabFactAttribute()
    {
        if (!OperatingSystem.IsLinux())
        {
            Skip = "skipped: the lab needs Linux network namespaces";
        }
        else if (!Environment.IsPrivilegedProcess) // on Unix: geteuid() == 0
        {
            Skip = "skipped: needs root to create network namespaces (ops/lab/lab.sh); CI runs as root";
        }
    }
}

/// <summary>A [Theory] for behaviour that exists only on Linux (/proc, execve of /proc/self/exe).</summary>
public sealed class LinuxTheoryAttribute : TheoryAttribute
{
    public LinuxTheoryAttribute()
    {
        if (!OperatingSystem.IsLinux())
        {
            Skip = "skipped: Linux only";
        }
    }
}
