#!/usr/bin/env python3
"""Draws docs/cost-vs-n.svg: server CPU per forwarded packet against the number of receivers,
from the cascade-load tables of docs/benchmarks.md (baseline, before the performance pass, and
the two livestream points measured after it). No dependencies: writes the SVG by hand.

    python3 docs/plots/cost_vs_n.py   # rewrites docs/cost-vs-n.svg
"""

from pathlib import Path

# (receivers per packet, CPU us per forwarded packet), copied from docs/benchmarks.md.
SERIES = [
    ("livestream, before", "#1f77b4", [(10, 29.3), (25, 19.3), (50, 17.1), (100, 16.6),
                                       (150, 15.1), (200, 13.9), (300, 14.4)]),
    # conference N x N: each packet goes to N - 1 receivers.
    ("conference N x N, before", "#ff7f0e", [(1, 108.7), (3, 40.6), (5, 28.8), (7, 17.7),
                                             (11, 14.4), (15, 12.6)]),
    ("livestream, after the pass", "#2ca02c", [(50, 14.9), (200, 14.0)]),
]
TARGET_US = 5.0

W, H, LEFT, RIGHT, TOP, BOTTOM = 720, 420, 70, 230, 30, 60
X_MAX, Y_MAX = 300, 45  # the 2-participant conference (108.7 us) is clipped, and labelled


def x(v):
    return LEFT + (W - LEFT - RIGHT) * v / X_MAX


def y(v):
    return TOP + (H - TOP - BOTTOM) * (1 - min(v, Y_MAX) / Y_MAX)


def main():
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           'font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>']
    for t in range(0, X_MAX + 1, 50):
        out.append(f'<line x1="{x(t)}" y1="{y(0)}" x2="{x(t)}" y2="{y(Y_MAX)}" stroke="#eee"/>')
        out.append(f'<text x="{x(t)}" y="{y(0) + 18}" text-anchor="middle">{t}</text>')
    for t in range(0, Y_MAX + 1, 5):
        out.append(f'<line x1="{x(0)}" y1="{y(t)}" x2="{x(X_MAX)}" y2="{y(t)}" stroke="#eee"/>')
        out.append(f'<text x="{x(0) - 8}" y="{y(t) + 4}" text-anchor="end">{t}</text>')
    out.append(f'<text x="{(x(0) + x(X_MAX)) / 2}" y="{H - 15}" text-anchor="middle">'
               'receivers of each packet (livestream viewers; conference N - 1)</text>')
    out.append(f'<text transform="translate(18 {(y(0) + y(Y_MAX)) / 2}) rotate(-90)" '
               'text-anchor="middle">server CPU us per forwarded packet</text>')
    out.append(f'<line x1="{x(0)}" y1="{y(TARGET_US)}" x2="{x(X_MAX)}" y2="{y(TARGET_US)}" '
               'stroke="#d62728" stroke-dasharray="6 4"/>')
    out.append(f'<text x="{x(X_MAX) - 4}" y="{y(TARGET_US) - 6}" text-anchor="end" '
               'fill="#d62728">target: 5 us</text>')
    for i, (name, color, points) in enumerate(SERIES):
        path = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in points)
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for a, b in points:
            out.append(f'<circle cx="{x(a):.1f}" cy="{y(b):.1f}" r="3.5" fill="{color}"/>')
            if b > Y_MAX:
                out.append(f'<text x="{x(a) + 6:.1f}" y="{y(b) + 12:.1f}" fill="{color}">'
                           f'{b} us</text>')
        ly = TOP + 20 + 22 * i
        lx = W - RIGHT + 20
        out.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 24}" y2="{ly}" stroke="{color}" '
                   'stroke-width="2"/>')
        out.append(f'<text x="{lx + 30}" y="{ly + 4}">{name}</text>')
    out.append("</svg>")
    target = Path(__file__).resolve().parent.parent / "cost-vs-n.svg"
    target.write_text("\n".join(out) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
