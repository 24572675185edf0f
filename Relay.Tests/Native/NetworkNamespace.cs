using System.Runtime.InteropServices;

namespace Relay.Tests.Native;

/// <summary>
/// Runs code inside a named network namespace (<c>ip netns add</c>) without a child process:
/// on a thread of its own that joins the namespace with setns(2), which changes only that
/// thread. Sockets opened there stay in the namespace when used from any thread afterwards.
/// Optionally the thread also drops capabilities from its effective set (also per thread),
/// to see what the relay does without them.
/// </summary>
internal static class NetworkNamespace
{
    /// <summary>
    /// <paramref name="action"/>'s result, run on a new thread inside namespace <paramref name="name"/>
    /// without the <see cref="Capability"/> numbers in <paramref name="dropCapabilities"/>.
    /// </summary>
    public static T Run<T>(string name, Func<T> action, params int[] dropCapabilities)
    {
        T? result = default;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                using (var ns = File.OpenHandle($"/run/netns/{name}"))
                {
                    if (Sched.Setns((int)ns.DangerousGetHandle(), Sched.CLONE_NEWNET) != 0)
                    {
                        throw new InvalidOperationException($"setns into {name}: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
                    }
                }

                if (dropCapabilities.Length > 0)
                {
                    DropEffective(dropCapabilities);
                }

                result = action();
            }
            catch (Exception e)
            {
                failure = e;
            }
        });
        thread.Start();
        Assert.True(thread.Join(TimeSpan.FromSeconds(30)), $"code in namespace {name} did not finish within 30 s");
        if (failure is not null)
        {
            throw new InvalidOperationException($"in namespace {name}: {failure.Message}", failure);
        }

        return result!;
    }

    private static unsafe void DropEffective(int[] capabilities)
    {
        var header = stackalloc uint[2] { Capability.LINUX_CAPABILITY_VERSION_3, 0 };
        // Two {effective, permitted, inheritable} triples: capabilities 0-31, then 32-63.
        var data = stackalloc uint[6];
        if (Capability.Capget(header, data) != 0)
        {
            throw new InvalidOperationException($"capget: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
        }

        foreach (var capability in capabilities)
        {
            data[capability / 32 * 3] &= ~(1u << (capability % 32));
        }

        if (Capability.Capset(header, data) != 0)
        {
            throw new InvalidOperationException($"capset: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
        }
    }
}
