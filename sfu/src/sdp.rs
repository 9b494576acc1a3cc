//! SDP inspection the SFU needs before handing an offer to the peer connection.

use rtc::sdp::description::session::SessionDescription;

use cascade_signaling::protocol::TrackKind;

use crate::error::MediaError;

/// Parses an SDP, mapping failure to [`MediaError::InvalidSdp`].
pub fn parse(sdp: &str) -> Result<SessionDescription, MediaError> {
    SessionDescription::unmarshal(&mut std::io::Cursor::new(sdp.as_bytes()))
        .map_err(|e| MediaError::InvalidSdp(e.to_string()))
}

/// The ICE username fragment of an SDP (the first one).
pub fn ice_ufrag(sdp: &str) -> Option<&str> {
    sdp.lines()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix("a=ice-ufrag:"))
        .map(str::trim)
}

/// Whether an offer has an active audio or video m-line that sends media (direction
/// `sendrecv`, `sendonly`, or none given, which means `sendrecv`).
pub fn offers_to_send(sdp: &str) -> Result<bool, MediaError> {
    let desc = parse(sdp)?;
    Ok(desc.media_descriptions.iter().any(|m| {
        let media = m.media_name.media.as_str();
        if (media != "audio" && media != "video") || m.media_name.port.value == 0 {
            return false;
        }
        let direction = m.attributes.iter().find(|a| {
            matches!(
                a.key.as_str(),
                "sendrecv" | "sendonly" | "recvonly" | "inactive"
            )
        });
        matches!(
            direction.map(|a| a.key.as_str()),
            None | Some("sendrecv" | "sendonly")
        )
    }))
}

/// The media kinds an offer wants to receive (active `recvonly` audio/video m-lines), each
/// once, in m-line order.
pub fn receiving_kinds(sdp: &str) -> Result<Vec<TrackKind>, MediaError> {
    let desc = parse(sdp)?;
    let mut kinds = Vec::new();
    for m in &desc.media_descriptions {
        let kind = match m.media_name.media.as_str() {
            "audio" => TrackKind::Audio,
            "video" => TrackKind::Video,
            _ => continue,
        };
        let recvonly = m.attributes.iter().any(|a| a.key == "recvonly");
        if m.media_name.port.value != 0 && recvonly && !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    Ok(kinds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(direction: &str, port: u16) -> String {
        format!(
            "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
             m=video {port} UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n{direction}\
             a=rtpmap:96 VP8/90000\r\n"
        )
    }

    #[test]
    fn detects_sending_m_lines() {
        assert!(offers_to_send(&offer("a=sendonly\r\n", 9)).unwrap());
        assert!(offers_to_send(&offer("a=sendrecv\r\n", 9)).unwrap());
        assert!(offers_to_send(&offer("", 9)).unwrap());
        assert!(!offers_to_send(&offer("a=recvonly\r\n", 9)).unwrap());
        assert!(!offers_to_send(&offer("a=sendonly\r\n", 0)).unwrap());
    }

    #[test]
    fn garbage_is_invalid_sdp() {
        assert!(matches!(
            offers_to_send("hello"),
            Err(MediaError::InvalidSdp(_))
        ));
    }
}
