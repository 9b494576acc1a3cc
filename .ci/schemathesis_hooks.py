"""Schemathesis hooks for .ci/schemathesis: send SDP bodies (WHIP/WHEP) as text."""

import schemathesis

schemathesis.serializer.alias("application/sdp", "text/plain")
schemathesis.serializer.alias("application/trickle-ice-sdpfrag", "text/plain")
