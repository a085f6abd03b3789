"""The organisation's look: a full colour palette derived from its one accent colour.

`palette(accent)` returns CSS custom properties for the light and the dark theme. Every
colour that carries text is chosen for WCAG AA contrast (4.5:1) against what it sits
on, so any accent an admin picks stays readable:

* `--accent` / `--accent-hover` / `--accent-active`: button backgrounds (hover and
  pressed shades move away from their text colour, so they only gain contrast), with
  `--on-accent`, the text colour on them (white or near-black, whichever contrasts
  more; the button shade is pushed further if neither reaches 4.5:1 with the colour);
* `--accent-text`: the accent used as text or link colour on the page background;
* `--accent-soft`: a faint tint for selected rows and tabs (text on it is the normal
  text colour); `--focus-ring`: the keyboard-focus outline (3:1 against the page, as
  WCAG asks of non-text contrast).
"""

from __future__ import annotations

import colorsys
from functools import lru_cache

AA_TEXT = 4.5
AA_NON_TEXT = 3.0
WHITE = "#ffffff"
INK = "#111318"
LIGHT_PAGE = "#f6f7fb"
DARK_PAGE = "#111318"


def _rgb(hex_colour: str) -> tuple[float, float, float]:
    value = hex_colour.lstrip("#")
    return tuple(int(value[i : i + 2], 16) / 255 for i in (0, 2, 4))  # type: ignore[return-value]


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{round(max(0.0, min(1.0, c)) * 255):02x}" for c in rgb)


def luminance(hex_colour: str) -> float:
    """WCAG relative luminance of a `#rrggbb` colour."""

    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in _rgb(hex_colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio between two colours (1 to 21)."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _with_lightness(hex_colour: str, lightness: float) -> str:
    h, _, s = colorsys.rgb_to_hls(*_rgb(hex_colour))
    return _hex(colorsys.hls_to_rgb(h, max(0.0, min(1.0, lightness)), s))


def _lightness(hex_colour: str) -> float:
    return colorsys.rgb_to_hls(*_rgb(hex_colour))[1]


def _shift(hex_colour: str, delta: float) -> str:
    return _with_lightness(hex_colour, _lightness(hex_colour) + delta)


def _mix(a: str, b: str, weight: float) -> str:
    """`weight` of `a` and the rest of `b`."""
    mixed = (x * weight + y * (1 - weight) for x, y in zip(_rgb(a), _rgb(b), strict=True))
    return _hex(tuple(mixed))  # type: ignore[arg-type]


def _until(colour: str, step: float, ok) -> str:
    """Shift lightness by `step` until `ok(colour)` (or lightness runs out)."""
    for _ in range(100):
        if ok(colour):
            return colour
        lightness = _lightness(colour)
        if (step < 0 and lightness <= 0.0) or (step > 0 and lightness >= 1.0):
            break
        colour = _shift(colour, step)
    return colour


def on_colour(background: str) -> str:
    """White or near-black text, whichever contrasts more with `background`."""
    return WHITE if contrast(WHITE, background) >= contrast(INK, background) else INK


def _button(accent: str) -> tuple[str, str]:
    """The button colour closest to `accent` that carries readable text, and that text."""
    text = on_colour(accent)
    if contrast(text, accent) >= AA_TEXT:
        return accent, text
    step = -0.02 if text == WHITE else 0.02
    shade = _until(accent, step, lambda c: contrast(text, c) >= AA_TEXT)
    return shade, text


def _theme(accent: str, page: str, dark: bool) -> dict[str, str]:
    button, text = _button(accent)
    away = -0.06 if text == WHITE else 0.06  # shades move away from their text colour
    hover, active = _shift(button, away), _shift(button, 2 * away)
    towards = 0.02 if dark else -0.02
    accent_text = _until(accent, towards, lambda c: contrast(c, page) >= AA_TEXT)
    ring = _until(accent, towards, lambda c: contrast(c, page) >= AA_NON_TEXT)
    soft = _mix(accent, page, 0.22 if dark else 0.12)
    return {
        "--accent": button,
        "--accent-hover": hover,
        "--accent-active": active,
        "--on-accent": text,
        "--accent-text": accent_text,
        "--accent-soft": soft,
        "--focus-ring": ring,
    }


@lru_cache(maxsize=64)
def palette(accent: str) -> dict[str, dict[str, str]]:
    """CSS custom properties for both themes: `{"light": {...}, "dark": {...}}`."""
    return {
        "light": _theme(accent.lower(), LIGHT_PAGE, dark=False),
        "dark": _theme(accent.lower(), DARK_PAGE, dark=True),
    }


def palette_css(accent: str) -> str:
    """The palette as a stylesheet: light by default, dark under `prefers-color-scheme`."""
    themes = palette(accent)

    def block(values: dict[str, str]) -> str:
        return " ".join(f"{name}: {value};" for name, value in values.items())

    return (
        f":root {{ {block(themes['light'])} }}\n"
        f"@media (prefers-color-scheme: dark) {{ :root {{ {block(themes['dark'])} }} }}"
    )
