using System.Net;

namespace Relay.Actors.Handover;

/// <summary>Why a <see cref="StateChannelOffer"/> closed a connection without reading from it further.</summary>
public enum StateChannelRejectionKind
{
    /// <summary>The peer's address is not the member the offer was made to; nothing was read.</summary>
    NotExpectedMember,

    /// <summary>The first bytes were not the offer's token.</summary>
    WrongToken,

    /// <summary>The peer sent no complete token within <see cref="StateChannelOffer.TokenDeadline"/>, or closed first.</summary>
    NoToken,

    /// <summary>A socket error before the channel opened.</summary>
    Failed,
}

/// <summary>
/// A connection a <see cref="StateChannelOffer"/> refused: who (the peer's address and port)
/// and why, in words fit for one log line (<see cref="ToString"/>).
/// </summary>
public sealed record StateChannelRejection(IPEndPoint Peer, StateChannelRejectionKind Kind, string Reason)
{
    public override string ToString() => $"{Peer}: {Reason}";
}
