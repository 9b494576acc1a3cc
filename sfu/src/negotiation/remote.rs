//! A peer's session description, parsed once (with the `sdp` crate) into what negotiation
//! needs: per m-section its kind, mid, direction, codecs with their RTX, header extensions,
//! SSRCs, simulcast rids and msid; for the session its ICE credentials, DTLS fingerprint and
//! role, and BUNDLE group.

use rtc::sdp::description::media::MediaDescription;
use rtc::sdp::description::session::SessionDescription;

use super::NegotiationError;

/// What an m-section carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionKind {
    /// `m=audio`.
    Audio,
    /// `m=video`.
    Video,
    /// `m=application` (a data channel): not supported, always rejected.
    Application,
    /// Anything else: rejected.
    Other,
}

/// A media direction, from the point of view of the side that wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `a=sendrecv` (also when no direction is given).
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// Whether the writer sends.
    pub fn sends(self) -> bool {
        matches!(self, Self::SendRecv | Self::SendOnly)
    }

    /// Whether the writer receives.
    pub fn receives(self) -> bool {
        matches!(self, Self::SendRecv | Self::RecvOnly)
    }

    /// The direction that sends when `send` and receives when `recv`.
    pub fn from_flags(send: bool, recv: bool) -> Self {
        match (send, recv) {
            (true, true) => Self::SendRecv,
            (true, false) => Self::SendOnly,
            (false, true) => Self::RecvOnly,
            (false, false) => Self::Inactive,
        }
    }

    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
    }
}

/// A codec of an m-section, as the peer described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCodec {
    /// Its payload type.
    pub pt: u8,
    /// The encoding name, as written (case varies: `OPUS`, `opus`).
    pub name: String,
    /// The RTP clock rate.
    pub clock_rate: u32,
    /// Audio channels (1 when not given).
    pub channels: u16,
    /// The `a=fmtp` parameters, verbatim (empty if none).
    pub fmtp: String,
    /// The `a=rtcp-fb` values (`nack`, `nack pli`, `transport-cc`, ...).
    pub feedback: Vec<String>,
    /// The payload type of its RTX (`rtx` with `apt=` this one), if any.
    pub rtx_pt: Option<u8>,
}

/// One m-section of a peer's description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSection {
    /// Its kind.
    pub kind: SectionKind,
    /// The `m=` media name as written (for echoing a rejected section).
    pub media: String,
    /// The transport protocol as written.
    pub protocol: String,
    /// The first format of the `m=` line (for echoing a rejected section).
    pub first_format: String,
    /// `a=mid`.
    pub mid: String,
    /// Port 0 without `a=bundle-only`: the peer removed (or rejected) the section.
    pub stopped: bool,
    /// The peer's direction.
    pub direction: Direction,
    /// Codecs other than RTX, in the peer's order of preference, each with its RTX.
    pub codecs: Vec<RemoteCodec>,
    /// `a=extmap` id and URI.
    pub extensions: Vec<(u8, String)>,
    /// SSRCs of its media (not RTX), in order.
    pub ssrcs: Vec<u32>,
    /// `a=ssrc-group:FID` pairs: media SSRC, RTX SSRC.
    pub rtx_ssrcs: Vec<(u32, u32)>,
    /// `a=msid`: stream id and track id.
    pub msid: Option<(String, String)>,
    /// The rids it sends (`a=rid:<id> send`), in `a=simulcast` order when given.
    pub send_rids: Vec<String>,
    /// `a=rtcp-rsize`.
    pub rtcp_rsize: bool,
}

/// A peer's whole description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteDescription {
    /// Its m-sections, in order.
    pub sections: Vec<RemoteSection>,
    /// ICE username fragment and password (the first ones; BUNDLE shares one transport).
    pub ice_ufrag: String,
    /// ICE password.
    pub ice_pwd: String,
    /// The sha-256 DTLS fingerprint, `sha-256 AB:CD:...`.
    pub fingerprint: String,
    /// `a=setup` (`actpass`, `active`, `passive`).
    pub setup: String,
    /// The mids of its `a=group:BUNDLE`.
    pub bundle: Vec<String>,
    /// Its `a=candidate` values, each once.
    pub candidates: Vec<String>,
}

/// The most m-sections a description may have (a room's tracks, each in one section, plus
/// what a client publishes).
pub const MAX_SECTIONS: usize = 512;

impl RemoteDescription {
    /// Parses `sdp`. Errors name what is missing or malformed.
    pub fn parse(sdp: &str) -> Result<Self, NegotiationError> {
        let desc = SessionDescription::unmarshal(&mut std::io::Cursor::new(sdp.as_bytes()))
            .map_err(|e| NegotiationError::Malformed(e.to_string()))?;
        if desc.media_descriptions.len() > MAX_SECTIONS {
            return Err(NegotiationError::TooManySections(
                desc.media_descriptions.len(),
            ));
        }
        let session_attr = |key: &str| desc.attribute(key).cloned();
        let first_media_attr = |key: &str| {
            desc.media_descriptions
                .iter()
                .find_map(|m| m.attribute(key).flatten().map(str::to_owned))
        };
        let either = |key: &str| session_attr(key).or_else(|| first_media_attr(key));
        let ice_ufrag = either("ice-ufrag").ok_or(NegotiationError::Missing("a=ice-ufrag"))?;
        let ice_pwd = either("ice-pwd").ok_or(NegotiationError::Missing("a=ice-pwd"))?;
        let fingerprint = sha256_fingerprint(&desc)?;
        let setup = either("setup").unwrap_or_else(|| "actpass".to_owned());
        let bundle = desc
            .attributes
            .iter()
            .filter(|a| a.key == "group")
            .filter_map(|a| a.value.as_deref()?.strip_prefix("BUNDLE"))
            .flat_map(|mids| mids.split_whitespace().map(str::to_owned))
            .collect();
        let mut candidates: Vec<String> = Vec::new();
        for m in &desc.media_descriptions {
            for a in m.attributes.iter().filter(|a| a.key == "candidate") {
                if let Some(c) = &a.value
                    && !candidates.contains(c)
                {
                    candidates.push(c.clone());
                }
            }
        }
        let sections = desc
            .media_descriptions
            .iter()
            .enumerate()
            .map(|(i, m)| section(i, m))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            sections,
            ice_ufrag,
            ice_pwd,
            fingerprint,
            setup,
            bundle,
            candidates,
        })
    }
}

/// The sha-256 fingerprint, at session or media level; other algorithms are ignored (Cascade
/// verifies the certificate's sha-256).
fn sha256_fingerprint(desc: &SessionDescription) -> Result<String, NegotiationError> {
    let session = desc.attributes.iter();
    let media = desc
        .media_descriptions
        .iter()
        .flat_map(|m| m.attributes.iter());
    session
        .chain(media)
        .filter(|a| a.key == "fingerprint")
        .filter_map(|a| a.value.as_deref())
        .find(|v| v.to_ascii_lowercase().starts_with("sha-256 "))
        .map(str::to_owned)
        .ok_or(NegotiationError::Missing("a=fingerprint:sha-256"))
}

fn section(index: usize, m: &MediaDescription) -> Result<RemoteSection, NegotiationError> {
    let media = m.media_name.media.clone();
    let kind = match media.as_str() {
        "audio" => SectionKind::Audio,
        "video" => SectionKind::Video,
        "application" => SectionKind::Application,
        _ => SectionKind::Other,
    };
    let attr = |key: &str| m.attribute(key).flatten();
    let mid = attr("mid")
        .map(str::to_owned)
        .ok_or(NegotiationError::MissingMid(index))?;
    let direction = m
        .attributes
        .iter()
        .find_map(|a| match a.key.as_str() {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        })
        .unwrap_or(Direction::SendRecv);
    let mut codecs = Vec::new();
    let mut rtx = Vec::new();
    let parsed = m.codecs();
    for format in &m.media_name.formats {
        let Ok(pt) = format.parse::<u8>() else {
            continue;
        };
        let Some(c) = parsed.get(&pt) else {
            continue;
        };
        if c.name.eq_ignore_ascii_case("rtx") {
            if let Some(apt) = fmtp_param(&c.fmtp, "apt").and_then(|v| v.parse::<u8>().ok()) {
                rtx.push((pt, apt));
            }
            continue;
        }
        codecs.push(RemoteCodec {
            pt,
            name: c.name.clone(),
            clock_rate: c.clock_rate,
            channels: c.encoding_parameters.parse().unwrap_or(1),
            fmtp: c.fmtp.clone(),
            feedback: c.rtcp_feedback.clone(),
            rtx_pt: None,
        });
    }
    for (pt, apt) in rtx {
        if let Some(c) = codecs.iter_mut().find(|c| c.pt == apt) {
            c.rtx_pt = Some(pt);
        }
    }
    let extensions = m
        .attributes
        .iter()
        .filter(|a| a.key == "extmap")
        .filter_map(|a| {
            let (id, uri) = a.value.as_deref()?.split_once(' ')?;
            let id = id.split('/').next()?.parse().ok()?;
            let uri = uri.split_whitespace().next()?;
            Some((id, uri.to_owned()))
        })
        .collect();
    let mut ssrcs = Vec::new();
    let mut rtx_ssrcs = Vec::new();
    for a in &m.attributes {
        let Some(value) = a.value.as_deref() else {
            continue;
        };
        if a.key == "ssrc-group"
            && let Some(pair) = value.strip_prefix("FID ")
        {
            let ids: Vec<u32> = pair
                .split_whitespace()
                .filter_map(|s| s.parse().ok())
                .collect();
            if let [media, repair] = ids[..] {
                rtx_ssrcs.push((media, repair));
            }
        } else if a.key == "ssrc"
            && let Some(ssrc) = value.split(' ').next().and_then(|s| s.parse().ok())
            && !ssrcs.contains(&ssrc)
        {
            ssrcs.push(ssrc);
        }
    }
    ssrcs.retain(|s| !rtx_ssrcs.iter().any(|(_, r)| r == s));
    let msid = attr("msid").and_then(|v| {
        let mut parts = v.split_whitespace();
        Some((
            parts.next()?.to_owned(),
            parts.next().unwrap_or("").to_owned(),
        ))
    });
    Ok(RemoteSection {
        kind,
        media,
        protocol: m.media_name.protos.join("/"),
        first_format: m.media_name.formats.first().cloned().unwrap_or_default(),
        mid,
        stopped: m.media_name.port.value == 0 && !m.has_attribute("bundle-only"),
        direction,
        codecs,
        extensions,
        ssrcs,
        rtx_ssrcs,
        msid,
        send_rids: send_rids(m),
        rtcp_rsize: m.has_attribute("rtcp-rsize"),
    })
}

/// The rids the peer sends: `a=rid:<id> send`, ordered as in `a=simulcast:send` when given.
fn send_rids(m: &MediaDescription) -> Vec<String> {
    let mut rids: Vec<String> = m
        .attributes
        .iter()
        .filter(|a| a.key == "rid")
        .filter_map(|a| {
            let mut parts = a.value.as_deref()?.split_whitespace();
            let id = parts.next()?;
            (parts.next()? == "send").then(|| id.to_owned())
        })
        .collect();
    if let Some(order) = m
        .attribute("simulcast")
        .flatten()
        .and_then(|v| v.strip_prefix("send "))
    {
        let listed: Vec<&str> = order
            .split(';')
            .flat_map(|alt| alt.split(','))
            .map(|r| r.trim_start_matches('~'))
            .collect();
        rids.sort_by_key(|r| listed.iter().position(|l| l == r).unwrap_or(usize::MAX));
    }
    rids
}

/// The value of `key` in an `a=fmtp` parameter list (`k=v;k=v`).
pub fn fmtp_param<'a>(fmtp: &'a str, key: &str) -> Option<&'a str> {
    fmtp.split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}
