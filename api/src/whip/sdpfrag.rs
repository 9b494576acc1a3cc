//! Trickle-ICE SDP fragments (`application/trickle-ice-sdpfrag`, RFC 8840) as WHIP and WHEP
//! carry them in `PATCH` requests and ICE-restart responses, and the SDP edits an ICE restart
//! needs. Pure string work, no I/O.

/// A parsed SDP fragment: ICE credentials (present on an ICE restart) and candidates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fragment {
    /// `a=ice-ufrag`, session- or media-level.
    pub ufrag: Option<String>,
    /// `a=ice-pwd`, session- or media-level.
    pub pwd: Option<String>,
    /// Candidates in order, each with the mid and m-line index it appeared under.
    pub candidates: Vec<FragmentCandidate>,
}

/// One `a=candidate` line of a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentCandidate {
    /// The candidate attribute value, without the `a=` prefix (`candidate:...`).
    pub candidate: String,
    /// The mid of its m-line, if the fragment named one.
    pub mid: Option<String>,
    /// The index of its m-line within the fragment.
    pub mline_index: Option<u16>,
}

/// Why a fragment was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FragmentError {
    /// A line is not `x=value` SDP syntax.
    #[error("line {0} is not an SDP line")]
    Syntax(usize),
    /// A candidate line appears before any m-line.
    #[error("line {0}: a candidate outside an m= section")]
    CandidateOutsideMedia(usize),
    /// Only one of ice-ufrag and ice-pwd is present.
    #[error("an ICE restart needs both a=ice-ufrag and a=ice-pwd")]
    HalfCredentials,
}

/// Largest fragment accepted, in bytes.
pub const MAX_FRAGMENT: usize = 16 * 1024;

/// Parses a fragment.
pub fn parse(text: &str) -> Result<Fragment, FragmentError> {
    let mut frag = Fragment::default();
    let mut mline: Option<u16> = None;
    let mut mid: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let bytes = line.as_bytes();
        if bytes.len() < 2 || bytes[1] != b'=' || !bytes[0].is_ascii_lowercase() {
            return Err(FragmentError::Syntax(n + 1));
        }
        if line.starts_with("m=") {
            mline = Some(mline.map_or(0, |i| i.saturating_add(1)));
            mid = None;
        } else if let Some(v) = line.strip_prefix("a=mid:") {
            mid = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("a=ice-ufrag:") {
            frag.ufrag = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("a=ice-pwd:") {
            frag.pwd = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("a=")
            && v.starts_with("candidate:")
        {
            if mline.is_none() {
                return Err(FragmentError::CandidateOutsideMedia(n + 1));
            }
            frag.candidates.push(FragmentCandidate {
                candidate: v.trim().to_owned(),
                mid: None,
                mline_index: mline,
            });
        }
        // The mid may follow the candidates within an m-section: attribute it afterwards.
        if let Some(m) = &mid {
            for c in frag.candidates.iter_mut().rev() {
                if c.mline_index != mline || c.mid.is_some() {
                    break;
                }
                c.mid = Some(m.clone());
            }
        }
    }
    if frag.ufrag.is_some() != frag.pwd.is_some() {
        return Err(FragmentError::HalfCredentials);
    }
    Ok(frag)
}

/// The offer of an ICE restart: `offer` with its ICE credentials replaced and its candidates
/// removed (the new ones arrive in the fragment).
pub fn restart_offer(offer: &str, ufrag: &str, pwd: &str) -> String {
    let mut out = String::with_capacity(offer.len());
    for line in offer.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with("a=candidate:") || line == "a=end-of-candidates" {
            continue;
        }
        if line.starts_with("a=ice-ufrag:") {
            out.push_str("a=ice-ufrag:");
            out.push_str(ufrag);
        } else if line.starts_with("a=ice-pwd:") {
            out.push_str("a=ice-pwd:");
            out.push_str(pwd);
        } else {
            out.push_str(line);
        }
        out.push_str("\r\n");
    }
    out
}

/// The fragment answering an ICE restart, taken from the server's new answer: `a=ice-lite`,
/// its credentials, and the first m-line (the bundle's) with its mid and candidates.
pub fn from_answer(answer: &str) -> String {
    let mut head = Vec::new();
    let mut media = Vec::new();
    let mut in_first = false;
    let mut seen_media = false;
    for line in answer.lines().map(|l| l.trim_end_matches('\r')) {
        if line.starts_with("m=") {
            in_first = !seen_media;
            seen_media = true;
            if in_first {
                media.push(line);
            }
            continue;
        }
        let wanted = line == "a=ice-lite"
            || line.starts_with("a=ice-ufrag:")
            || line.starts_with("a=ice-pwd:")
            || line.starts_with("a=ice-options:");
        if wanted && !head.contains(&line) {
            head.push(line);
        }
        if in_first
            && (line.starts_with("a=mid:")
                || line.starts_with("a=candidate:")
                || line == "a=end-of-candidates")
        {
            media.push(line);
        }
    }
    let mut out = String::new();
    for line in head.into_iter().chain(media) {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
}

pub use cascade_sfu::sdp::ice_ufrag;

#[cfg(test)]
mod tests {
    use super::*;

    const TRICKLE: &str = "a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\n\
        a=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
        a=candidate:1 1 udp 2122260223 127.0.0.1 61764 typ host\r\n\
        a=candidate:2 1 udp 2122194687 127.0.0.1 61765 typ host\r\na=end-of-candidates\r\n";

    #[test]
    fn parses_credentials_and_candidates_with_their_mid() {
        let f = parse(TRICKLE).unwrap();
        assert_eq!(f.ufrag.as_deref(), Some("EsAw"));
        assert_eq!(f.pwd.as_deref(), Some("P2uYro0UCOQ4zxjKXaWCBui1"));
        assert_eq!(f.candidates.len(), 2);
        assert_eq!(f.candidates[1].mid.as_deref(), Some("0"));
        assert_eq!(f.candidates[1].mline_index, Some(0));
        assert!(f.candidates[0].candidate.starts_with("candidate:1 1 udp"));
    }

    #[test]
    fn a_mid_after_the_candidates_still_names_them() {
        let f = parse(
            "m=video 9 UDP/TLS/RTP/SAVPF 96\na=candidate:1 1 udp 1 127.0.0.1 9 typ host\na=mid:v\n",
        )
        .unwrap();
        assert_eq!(f.candidates[0].mid.as_deref(), Some("v"));
        assert_eq!(f.ufrag, None);
    }

    #[test]
    fn refuses_garbage_orphan_candidates_and_half_credentials() {
        assert_eq!(parse("hello world"), Err(FragmentError::Syntax(1)));
        assert_eq!(
            parse("a=candidate:1 1 udp 1 127.0.0.1 9 typ host"),
            Err(FragmentError::CandidateOutsideMedia(1))
        );
        assert_eq!(
            parse("a=ice-ufrag:abcd"),
            Err(FragmentError::HalfCredentials)
        );
        assert_eq!(parse(""), Ok(Fragment::default()));
    }

    #[test]
    fn restart_offer_swaps_credentials_and_drops_old_candidates() {
        let offer = "v=0\r\na=ice-ufrag:old\r\na=ice-pwd:oldpwd\r\nm=audio 9 X 111\r\n\
                     a=ice-ufrag:old\r\na=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n\
                     a=end-of-candidates\r\na=mid:0\r\n";
        let new = restart_offer(offer, "nu", "npwd");
        assert_eq!(
            new,
            "v=0\r\na=ice-ufrag:nu\r\na=ice-pwd:npwd\r\nm=audio 9 X 111\r\na=ice-ufrag:nu\r\na=mid:0\r\n"
        );
        assert_eq!(ice_ufrag(&new), Some("nu"));
    }

    #[test]
    fn answer_fragment_keeps_credentials_and_the_first_m_section() {
        let answer = "v=0\r\na=ice-lite\r\nm=audio 9 X 111\r\na=ice-ufrag:srv\r\na=ice-pwd:spwd\r\n\
                      a=mid:0\r\na=candidate:9 1 udp 1 127.0.0.1 7882 typ host\r\n\
                      a=end-of-candidates\r\nm=video 9 X 96\r\na=ice-ufrag:srv\r\na=mid:1\r\n\
                      a=candidate:9 1 udp 1 127.0.0.1 7882 typ host\r\n";
        assert_eq!(
            from_answer(answer),
            "a=ice-lite\r\na=ice-ufrag:srv\r\na=ice-pwd:spwd\r\nm=audio 9 X 111\r\na=mid:0\r\n\
             a=candidate:9 1 udp 1 127.0.0.1 7882 typ host\r\na=end-of-candidates\r\n"
        );
    }
}
