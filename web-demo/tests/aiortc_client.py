#!/usr/bin/env python3
"""A WHIP publisher or WHEP viewer built on aiortc, an independent WebRTC stack, for the
interop test (whip.test.mjs).

    aiortc_client.py publish URL TOKEN --room R --seconds N
    aiortc_client.py view    URL TOKEN --room R --seconds N [--min-video F] [--min-audio F]

Both modes post an offer *without* candidates, then trickle them with PATCH (If-Match: the
ETag), run for the given time (the publisher prints `{"event": "connected"}` once connected and
stops early when its standard input closes; the viewer stops early once it has its frames), end
the session with DELETE, and print one JSON line with what happened. The viewer exits 1 if it decoded fewer
video or audio frames than asked. Loopback only: aioice is told 127.0.0.1 is the host address.
"""

import argparse
import asyncio
import fractions
import json
import sys
import threading
import time

import aioice.ice
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import AudioStreamTrack
from av import VideoFrame
from http_request import http

# aioice leaves loopback out of the host addresses; the test network has nothing else.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


class MovingVideo(VideoStreamTrack):
    """320x240 frames whose brightness changes every frame, so the encoder sends real data."""

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(width=320, height=240, format="yuv420p")
        shade = (pts // 3000) % 200 + 20
        for plane in frame.planes:
            plane.update(bytes([shade]) * plane.buffer_size)
        frame.pts, frame.time_base = pts, time_base
        return frame


def split_candidates(sdp):
    """The SDP without candidate lines, and an RFC 8840 fragment carrying them."""
    kept, frag, mline, mid, ufrag, pwd = [], {}, -1, {}, None, None
    for line in sdp.splitlines():
        if line.startswith("m="):
            mline += 1
            frag.setdefault(mline, [line])
        if line.startswith("a=mid:"):
            mid[mline] = line
        if line.startswith("a=ice-ufrag:") and ufrag is None:
            ufrag = line
        if line.startswith("a=ice-pwd:") and pwd is None:
            pwd = line
        if line.startswith("a=candidate:"):
            frag[mline].append(line)
            continue
        if line == "a=end-of-candidates":
            continue
        kept.append(line)
    # BUNDLE: the candidates of the first m-section serve every m-line.
    first = frag.get(0, [])
    body = [ufrag, pwd, first[0], mid.get(0, "a=mid:0")] + first[1:] + ["a=end-of-candidates"]
    return "\r\n".join(kept) + "\r\n", "\r\n".join(body) + "\r\n", len(first) - 1


async def negotiate(pc, endpoint, token, result):
    await pc.setLocalDescription(await pc.createOffer())
    offer, fragment, count = split_candidates(pc.localDescription.sdp)
    auth = {"Authorization": f"Bearer {token}"}
    status, headers, answer = await asyncio.to_thread(
        http, "POST", endpoint, offer, "application/sdp", auth
    )
    result["post_status"] = status
    if status != 201:
        raise RuntimeError(f"POST {endpoint}: {status} {answer}")
    base = endpoint.split("/", 3)
    resource = f"{base[0]}//{base[2]}{headers['Location']}"
    result["resource"] = headers["Location"]
    status, _, text = await asyncio.to_thread(
        http, "PATCH", resource, fragment, "application/trickle-ice-sdpfrag",
        {"If-Match": headers["ETag"]},
    )
    result["patch_status"] = status
    result["trickled_candidates"] = count
    if status != 204:
        raise RuntimeError(f"PATCH {resource}: {status} {text}")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return resource


async def wait_connected(pc, timeout):
    deadline = time.monotonic() + timeout
    while pc.connectionState != "connected":
        if pc.connectionState in ("failed", "closed") or time.monotonic() > deadline:
            raise RuntimeError(f"connection state {pc.connectionState}")
        await asyncio.sleep(0.05)


async def wait_stdin_closed(timeout):
    """Returns when standard input reaches end of file, or after `timeout` seconds."""
    loop, closed = asyncio.get_running_loop(), asyncio.Event()

    def read():
        sys.stdin.read()
        loop.call_soon_threadsafe(closed.set)

    # A daemon thread: it must not keep the process alive if the timeout ends the wait.
    threading.Thread(target=read, daemon=True).start()
    try:
        await asyncio.wait_for(closed.wait(), timeout)
    except asyncio.TimeoutError:
        pass


async def publish(args, result):
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    pc.addTransceiver(MovingVideo(), direction="sendonly")
    resource = await negotiate(pc, f"{args.url}/whip/{args.room}", args.token, result)
    try:
        await wait_connected(pc, 10)
        result["connected"] = True
        print(json.dumps({"event": "connected"}), flush=True)
        await wait_stdin_closed(args.seconds)
    finally:
        status, _, _ = await asyncio.to_thread(http, "DELETE", resource)
        result["delete_status"] = status
        await pc.close()


async def view(args, result):
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    counts = {"video": 0, "audio": 0}
    sizes = set()

    async def consume(track):
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            counts[track.kind] += 1
            if track.kind == "video":
                sizes.add((frame.width, frame.height))

    pc.on("track", lambda track: asyncio.ensure_future(consume(track)))
    pc.addTransceiver("audio", direction="recvonly")
    pc.addTransceiver("video", direction="recvonly")
    query = f"?participant={args.participant}" if args.participant else ""
    resource = await negotiate(pc, f"{args.url}/whep/{args.room}{query}", args.token, result)
    try:
        await wait_connected(pc, 10)
        result["connected"] = True
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            if counts["video"] >= args.min_video and counts["audio"] >= args.min_audio:
                break
            await asyncio.sleep(0.1)
    finally:
        result["video_frames"] = counts["video"]
        result["audio_frames"] = counts["audio"]
        result["video_sizes"] = sorted(sizes)
        status, _, _ = await asyncio.to_thread(http, "DELETE", resource)
        result["delete_status"] = status
        await pc.close()
    return counts["video"] >= args.min_video and counts["audio"] >= args.min_audio


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["publish", "view"])
    p.add_argument("url", help="server base URL, e.g. http://127.0.0.1:7880")
    p.add_argument("token")
    p.add_argument("--room", required=True)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--participant", help="WHEP: watch this identity")
    p.add_argument("--min-video", type=int, default=10)
    p.add_argument("--min-audio", type=int, default=10)
    args = p.parse_args()
    result = {"mode": args.mode}
    ok = False
    try:
        ok = asyncio.run(publish(args, result) if args.mode == "publish" else view(args, result))
        ok = ok if args.mode == "view" else True
    except Exception as e:  # reported in the JSON line, with a failing exit status
        result["error"] = f"{type(e).__name__}: {e}"
    result["ok"] = bool(ok) and "error" not in result
    print(json.dumps(result), flush=True)
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
