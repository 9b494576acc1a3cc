//! Where the server's ICE candidates go in the SDP it hands out (answers and offers).
//!
//! The WebRTC stack writes each host candidate twice (component 1 and component 2, although
//! every m-section has `a=rtcp-mux`) and only into the first m-section of a bundle group.
//! Clients differ in where they look: aiortc with `max-bundle` reads the *last* bundled
//! m-section. [`spread`] rewrites the SDP so that every active m-section (port not 0) carries
//! the same component-1 candidates, followed by `a=end-of-candidates` if the stack wrote it.
//! Sans-I/O.

/// Returns `sdp` with its component-1 candidates (each once, in order) in every active
/// m-section and no component-2 candidate; other lines are kept as they are.
pub fn spread(sdp: &str) -> String {
    let eol = if sdp.contains("\r\n") { "\r\n" } else { "\n" };
    let lines: Vec<&str> = sdp.lines().collect();
    let mut candidates: Vec<&str> = Vec::new();
    let mut end_of_candidates = false;
    for line in &lines {
        if let Some(c) = line.strip_prefix("a=candidate:") {
            if c.split(' ').nth(1) == Some("1") && !candidates.contains(line) {
                candidates.push(line);
            }
        } else if *line == "a=end-of-candidates" {
            end_of_candidates = true;
        }
    }
    // The candidate block that closes every active m-section.
    let mut block: Vec<&str> = candidates;
    if end_of_candidates {
        block.push("a=end-of-candidates");
    }
    let mut out = String::with_capacity(sdp.len() + block.len() * 128);
    let mut active = false;
    for line in &lines {
        if line.starts_with("a=candidate:") || *line == "a=end-of-candidates" {
            continue;
        }
        if let Some(m) = line.strip_prefix("m=") {
            if active {
                push_lines(&mut out, &block, eol);
            }
            active = m.split(' ').nth(1).is_some_and(|port| port != "0");
        }
        push_lines(&mut out, &[line], eol);
    }
    if active {
        push_lines(&mut out, &block, eol);
    }
    out
}

fn push_lines(out: &mut String, lines: &[&str], eol: &str) {
    for l in lines {
        out.push_str(l);
        out.push_str(eol);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C1: &str = "a=candidate:1 1 udp 2130706431 10.0.0.1 7882 typ host";
    const C2: &str = "a=candidate:1 2 udp 2130706431 10.0.0.1 7882 typ host";
    const D1: &str = "a=candidate:2 1 udp 2130706431 10.0.0.2 7882 typ host";

    fn sdp(lines: &[&str]) -> String {
        lines.iter().map(|l| format!("{l}\r\n")).collect()
    }

    #[test]
    fn every_active_m_section_gets_the_component_1_candidates() {
        // Session header + audio section, active video section, inactive video section.
        let head = [
            "v=0",
            "a=group:BUNDLE 0 1",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        ];
        let audio = ["a=mid:0", "a=rtcp-mux"];
        let video = ["m=video 9 UDP/TLS/RTP/SAVPF 96", "a=mid:1", "a=rtcp-mux"];
        let inactive = ["m=video 0 UDP/TLS/RTP/SAVPF 96", "a=mid:2"];
        let end = "a=end-of-candidates";
        let before = sdp(&[&head[..], &audio, &[C1, C2, D1, end], &video, &inactive].concat());
        let after = sdp(&[
            &head[..],
            &audio,
            &[C1, D1, end],
            &video,
            &[C1, D1, end],
            &inactive,
        ]
        .concat());
        assert_eq!(spread(&before), after);
        assert_eq!(spread(&after), after, "idempotent");
    }

    #[test]
    fn without_candidates_or_end_marker_only_component_2_goes() {
        let no_candidates = sdp(&["v=0", "m=audio 9 RTP/AVP 0", "a=mid:0"]);
        assert_eq!(spread(&no_candidates), no_candidates);
        let lf = "v=0\nm=audio 9 RTP/AVP 0\na=candidate:1 2 udp 1 h 1 typ host\n";
        assert_eq!(spread(lf), "v=0\nm=audio 9 RTP/AVP 0\n");
    }
}
