#!/usr/bin/python3
"""A GStreamer webrtcbin (libnice) WHIP publisher for the interop test (gst_whip.test.mjs).

Publishes a VP8 test pattern (320x240) to `<url>/whip/<room>`: bundle-policy max-bundle, one
sendonly transceiver, the offer POSTed once ICE gathering is complete (no trickle), the
answer applied. Prints one JSON object per line: {"event": "connected"} when ICE connects,
then the result ({"ok": ..., "post_status": ..., "delete_status": ..., "ice_states": [...]})
after `--seconds` or when stdin closes; the session resource is DELETEd at the end.

Runs with Debian's python3 and GStreamer packages (python3-gi, gir1.2-gst-plugins-bad-1.0,
gstreamer1.0-nice, ...). libnice ignores loopback interfaces: the host needs another address
(the test adds 127.0.0.2 on a veth) that the server advertises.
"""

import argparse
import json
import select
import sys
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402
from http_request import http  # noqa: E402

PIPELINE = (
    "webrtcbin name=w bundle-policy=max-bundle "
    "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 "
    "! vp8enc deadline=1 keyframe-max-dist=30 ! rtpvp8pay pt=96 "
    "! application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000 ! w."
)


def bearer(token):
    """The Authorization header of `token`."""
    return {"Authorization": f"Bearer {token}"}


def wait_promise(promise):
    """Waits for a Gst.Promise (webrtcbin answers from its own thread; the test bounds the
    whole process with its timeout)."""
    promise.wait()
    return promise.get_reply()


def run(args):
    result = {"ok": False, "ice_states": []}
    Gst.init(None)
    pipe = Gst.parse_launch(PIPELINE)
    w = pipe.get_by_name("w")
    ctx = GLib.MainContext.default()
    w.emit("get-transceiver", 0).set_property(
        "direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY
    )

    def on_ice_state(*_):
        state = w.get_property("ice-connection-state").value_nick
        if not result["ice_states"] or result["ice_states"][-1] != state:
            result["ice_states"].append(state)
        if state in ("connected", "completed") and not result.get("connected"):
            result["connected"] = True
            print(json.dumps({"event": "connected"}), flush=True)

    w.connect("notify::ice-connection-state", on_ice_state)
    negotiation_needed = []
    w.connect("on-negotiation-needed", lambda *_: negotiation_needed.append(True))
    pipe.set_state(Gst.State.PLAYING)

    # Offer once the transceiver has its caps, then wait for ICE gathering to complete: the
    # offer carries every candidate.
    deadline = time.monotonic() + 10
    while not negotiation_needed:
        if time.monotonic() > deadline:
            raise TimeoutError("on-negotiation-needed")
        ctx.iteration(False)
        time.sleep(0.01)
    # The offer belongs to the reply of its promise: keep both alive while using it.
    offered = Gst.Promise.new()
    w.emit("create-offer", Gst.Structure.new_empty("offer-options"), offered)
    reply = wait_promise(offered)
    offer = reply.get_value("offer")
    promise = Gst.Promise.new()
    w.emit("set-local-description", offer, promise)
    wait_promise(promise)
    deadline = time.monotonic() + 10
    while w.get_property("ice-gathering-state") != GstWebRTC.WebRTCICEGatheringState.COMPLETE:
        if time.monotonic() > deadline:
            raise TimeoutError("ICE gathering")
        ctx.iteration(False)
        time.sleep(0.01)
    sdp = w.get_property("local-description").sdp.as_text()
    result["offer_candidates"] = sdp.count("a=candidate:")

    status, headers, body = http("POST", f"{args.url}/whip/{args.room}", sdp, "application/sdp", bearer(args.token))
    result["post_status"] = status
    if status != 201:
        result["error"] = body
        return result
    location = headers.get("Location", "")
    resource = location if location.startswith("http") else args.url + location
    _, msg = GstSdp.SDPMessage.new_from_text(body)
    answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, msg)
    promise = Gst.Promise.new()
    w.emit("set-remote-description", answer, promise)
    wait_promise(promise)

    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        ctx.iteration(False)
        readable, _, _ = select.select([sys.stdin], [], [], 0.02)
        if readable and not sys.stdin.read(1):
            break  # stdin closed: end the session now
    result["delete_status"] = http("DELETE", resource, headers=bearer(args.token))[0]
    pipe.set_state(Gst.State.NULL)
    result["ok"] = bool(result.get("connected")) and result["delete_status"] == 200
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url", help="server base URL, e.g. http://127.0.0.1:7880")
    p.add_argument("token")
    p.add_argument("--room", required=True)
    p.add_argument("--seconds", type=float, default=30)
    args = p.parse_args()
    try:
        result = run(args)
    except Exception as e:  # reported as the result line
        result = {"ok": False, "error": repr(e)}
    print(json.dumps(result), flush=True)
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
