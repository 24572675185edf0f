using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Akka.Actor;
using Relay.Actors.Circuits;
using Relay.Host.Logging;
using Relay.Host.Management;
using Relay.Tests.Logging;
using Serilog.Core;

namespace Relay.Tests.Management;

public sealed class ManagementServerTests : IAsyncLifetime
{
    private static readonly IPEndPoint AnyLoopbackPort = new(IPAddress.Loopback, 0);

    private readonly CircuitRegistry _circuits = new();
    private readonly HttpClient _http = new();
    private readonly LogCapture _log = new();
    private Func<bool> _isReady = () => false;
    private ManagementServer _server = null!;

    public async Task InitializeAsync()
    {
        _server = await ManagementServer.StartAsync(AnyLoopbackPort, Context(), CancellationToken.None);
        _http.BaseAddress = _server.BaseAddress;
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _server.DisposeAsync();
    }

    [Fact]
    public void Port_zero_reports_the_port_the_OS_chose()
    {
        Assert.Equal("http", _server.BaseAddress.Scheme);
        Assert.Equal("127.0.0.1", _server.BaseAddress.Host);
        Assert.NotEqual(0, _server.BaseAddress.Port);
    }

    [Fact]
    public async Task Alive_is_200_with_status_alive()
    {
        var (status, json) = await Get("/health/alive");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("alive", json.GetProperty("status").GetString());
    }

    [Fact]
    public async Task Ready_follows_IsReady_between_503_and_200()
    {
        var (notReadyStatus, notReady) = await Get("/health/ready");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, notReadyStatus);
        Assert.Equal("not-ready", notReady.GetProperty("status").GetString());

        _isReady = () => true;
        var (readyStatus, ready) = await Get("/health/ready");
        Assert.Equal(HttpStatusCode.OK, readyStatus);
        Assert.Equal("ready", ready.GetProperty("status").GetString());
    }

    [Theory]
    [InlineData("/health/alive")]
    [InlineData("/health/ready")]
    [InlineData("/circuits")]
    public async Task Head_on_a_GET_route_answers_its_status_and_headers_without_the_body(string path)
    {
        _isReady = () => true;
        using var get = await _http.GetAsync(path);
        using var head = await _http.SendAsync(new HttpRequestMessage(HttpMethod.Head, path));

        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Equal(get.Content.Headers.ContentType, head.Content.Headers.ContentType);
        Assert.Equal("application/json", head.Content.Headers.ContentType?.MediaType);
        Assert.NotEmpty(await get.Content.ReadAsByteArrayAsync());
        Assert.Empty(await head.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task Head_on_ready_follows_IsReady_between_503_and_200()
    {
        using (var notReady = await _http.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/health/ready")))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, notReady.StatusCode);
        }

        _isReady = () => true;
        using var ready = await _http.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/health/ready"));
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
    }

    [Fact]
    public async Task Circuits_lists_every_field_in_camelCase_with_wire_state_and_UTC_times()
    {
        var entry = AddCircuit(7, "jumbo-out", "akka.tcp://relay@10.0.0.1:4053", CircuitState.HalfClosed);
        entry.Counters.AddWritten(upstream: true, 1500, Environment.TickCount64);
        entry.Counters.AddWritten(upstream: false, 64000, Environment.TickCount64);

        var (status, json) = await Get("/circuits");

        Assert.Equal(HttpStatusCode.OK, status);
        var circuit = Assert.Single(json.EnumerateArray());
        Assert.Equal(
            ["id", "route", "node", "client", "upstream", "state", "bytesUp", "bytesDown", "openedAt", "lastActivity", "moves"],
            circuit.EnumerateObject().Select(p => p.Name));
        Assert.Equal(7, circuit.GetProperty("id").GetInt64());
        // Never handed over: no moves, and no movedAt at all.
        Assert.Equal(0, circuit.GetProperty("moves").GetInt32());
        Assert.Equal("jumbo-out", circuit.GetProperty("route").GetString());
        Assert.Equal("akka.tcp://relay@10.0.0.1:4053", circuit.GetProperty("node").GetString());
        Assert.Equal("127.0.0.1:50007", circuit.GetProperty("client").GetString());
        Assert.Equal("10.1.0.5:7000", circuit.GetProperty("upstream").GetString());
        Assert.Equal("half-closed", circuit.GetProperty("state").GetString());
        Assert.Equal(1500, circuit.GetProperty("bytesUp").GetInt64());
        Assert.Equal(64000, circuit.GetProperty("bytesDown").GetInt64());
        Assert.EndsWith("Z", circuit.GetProperty("openedAt").GetString());
        Assert.EndsWith("Z", circuit.GetProperty("lastActivity").GetString());
        Assert.Equal(entry.OpenedAt, circuit.GetProperty("openedAt").GetDateTimeOffset());
    }

    [Fact]
    public async Task Circuits_with_no_circuits_is_an_empty_array()
    {
        var (status, json) = await Get("/circuits");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(JsonValueKind.Array, json.ValueKind);
        Assert.Equal(0, json.GetArrayLength());
    }

    [Fact]
    public async Task Circuits_filter_by_state_route_and_node_together()
    {
        AddCircuit(1, "a", "node-1", CircuitState.Established);
        AddCircuit(2, "a", "node-1", CircuitState.Connecting);
        AddCircuit(3, "b", "node-1", CircuitState.Established);
        AddCircuit(4, "a", "node-2", CircuitState.Established);

        Assert.Equal(new long[] { 1, 3, 4 }, await Ids("/circuits?state=established"));
        Assert.Equal(new long[] { 1, 2, 4 }, await Ids("/circuits?route=a"));
        Assert.Equal(new long[] { 4 }, await Ids("/circuits?node=node-2"));
        Assert.Equal(new long[] { 1 }, await Ids("/circuits?state=established&route=a&node=node-1"));
        Assert.Empty(await Ids("/circuits?route=nope"));
    }

    [Fact]
    public async Task Circuits_with_an_unknown_state_is_400_naming_the_valid_ones()
    {
        var (status, json) = await Get("/circuits?state=sleeping");

        Assert.Equal(HttpStatusCode.BadRequest, status);
        var error = json.GetProperty("error").GetString();
        Assert.Contains("sleeping", error);
        Assert.Contains("connecting|established|half-closed|closed|lost", error);
    }

    [Fact]
    public async Task Circuit_by_id_is_the_same_object_as_in_the_list()
    {
        AddCircuit(11, "a", "node-1", CircuitState.Established);
        AddCircuit(12, "b", "node-1", CircuitState.Closed);

        var (status, json) = await Get("/circuits/12");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(12, json.GetProperty("id").GetInt64());
        Assert.Equal("closed", json.GetProperty("state").GetString());
    }

    [Fact]
    public async Task Circuit_by_unknown_id_is_404_with_a_JSON_error()
    {
        var (status, json) = await Get("/circuits/999");

        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Contains("999", json.GetProperty("error").GetString());
    }

    [Fact]
    public async Task Circuit_by_a_non_numeric_id_is_400_with_a_JSON_error()
    {
        var (status, json) = await Get("/circuits/abc");

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("abc", json.GetProperty("error").GetString());
    }

    [Fact]
    public async Task Unknown_path_is_404_with_a_JSON_error()
    {
        var (status, json) = await Get("/no/such/thing");

        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Equal("no route for GET /no/such/thing", json.GetProperty("error").GetString());
    }

    [Fact]
    public async Task Wrong_method_on_a_known_path_is_405_with_a_JSON_error()
    {
        using var response = await _http.PostAsync("/health/alive", content: null);

        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Contains("POST", json.RootElement.GetProperty("error").GetString());
    }

    [Fact]
    public async Task Route_that_throws_is_500_with_a_JSON_error_and_a_logged_event()
    {
        _isReady = () => throw new InvalidOperationException("guardian is gone");

        var (status, json) = await Get("/health/ready");

        Assert.Equal(HttpStatusCode.InternalServerError, status);
        Assert.Equal("internal error: guardian is gone", json.GetProperty("error").GetString());
        var logged = _log.WaitForJson(j => j.TryGetProperty("EventName", out var name) && name.GetString() == "ManagementRequestFailed");
        Assert.Equal("Error", logged.GetProperty("@l").GetString());
        Assert.Equal("/health/ready", logged.GetProperty("Path").GetString());
    }

    [Fact]
    public void Start_is_logged_with_the_bound_address()
    {
        var logged = _log.WaitForJson(j => j.TryGetProperty("EventName", out var name) && name.GetString() == "ManagementListening");

        Assert.Equal(_server.BaseAddress.ToString(), logged.GetProperty("ManagementAddress").GetString());
    }

    [Theory]
    [InlineData("/metrics")]
    [InlineData("/routes")]
    [InlineData("/loglevel")]
    public async Task Routes_that_need_the_relay_node_are_503_with_a_JSON_error_without_one(string path)
    {
        var (status, json) = await Get(path);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
        Assert.Contains("no relay node", json.GetProperty("error").GetString());
    }

    [Fact]
    public async Task Responses_carry_no_Server_header()
    {
        using var response = await _http.GetAsync("/health/alive");

        Assert.Empty(response.Headers.Server);
    }

    [Fact]
    public async Task Port_in_use_fails_with_a_one_line_ManagementBindException()
    {
        using var squatter = new TcpListener(IPAddress.Loopback, 0);
        squatter.Start();
        var taken = (IPEndPoint)squatter.LocalEndpoint;

        var error = await Assert.ThrowsAsync<ManagementBindException>(
            () => ManagementServer.StartAsync(taken, Context(), CancellationToken.None));

        Assert.Equal($"management endpoint 127.0.0.1:{taken.Port} is already in use", error.Message);
        Assert.Equal(taken, error.Endpoint);
    }

    [Fact]
    public async Task Address_not_on_this_host_fails_with_the_OS_reason_on_one_line()
    {
        // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never assigned to a real interface.
        var foreign = new IPEndPoint(IPAddress.Parse("192.0.2.1"), 8558);

        var error = await Assert.ThrowsAsync<ManagementBindException>(
            () => ManagementServer.StartAsync(foreign, Context(), CancellationToken.None));

        Assert.StartsWith("management endpoint 192.0.2.1:8558 cannot be bound: ", error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }

    private ManagementContext Context() => new(
        _circuits,
        () => _isReady(),
        "akka.tcp://relay@127.0.0.1:4053",
        RelayLogging.CreateLogger(LogFormat.Json, new LoggingLevelSwitch(), _log),
        Token: "");

    private CircuitEntry AddCircuit(long id, string route, string node, CircuitState state)
    {
        var entry = new CircuitEntry(
            id, route, node, new IPEndPoint(IPAddress.Loopback, 50000 + (int)id), "10.1.0.5:7000", core: 0, ActorRefs.Nobody)
        {
            State = state,
        };
        _circuits.Add(entry);
        return entry;
    }

    private async Task<(HttpStatusCode Status, JsonElement Json)> Get(string path)
    {
        using var response = await _http.GetAsync(path);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return (response.StatusCode, document.RootElement.Clone());
    }

    private async Task<long[]> Ids(string path)
    {
        var (status, json) = await Get(path);
        Assert.Equal(HttpStatusCode.OK, status);
        return json.EnumerateArray().Select(c => c.GetProperty("id").GetInt64()).ToArray();
    }
}
