using System.Net;

namespace Relay.Host.Management;

/// <summary>
/// The management endpoint could not be bound. The message is one line fit to print to an
/// operator as it is, for example <c>management endpoint 127.0.0.1:8558 is already in use</c>.
/// </summary>
public sealed class ManagementBindException : Exception
{
    public ManagementBindException(IPEndPoint endpoint, string problem, Exception? innerException = null)
        : base($"management endpoint {endpoint} {problem}", innerException)
    {
        Endpoint = endpoint;
    }

    public IPEndPoint Endpoint { get; }
}
