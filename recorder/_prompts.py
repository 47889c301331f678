"""A built-in corpus of image-edit instructions, and prompt files supplied by the user.

The corpus mixes the kinds of edits people send to image-edit endpoints: style transfer, object
insertion and removal, colour and lighting changes, background swaps, retouching and text. Short
and long instructions are both present, because prompt length changes text-encoder cost.
"""

from __future__ import annotations

import os
from pathlib import Path

from ._errors import RecorderError

__all__ = ["BUILTIN_PROMPTS", "load_prompts"]

_STYLES = (
    "Convert this scene to a watercolor painting",
    "Make it look like an oil painting with visible brush strokes",
    "Turn the photo into a pencil sketch",
    "Render this as a 1980s anime still",
    "Make it look like a vintage film photograph with grain and faded colors",
    "Transform the image into a pixel-art scene",
    "Give the picture a comic book style with bold outlines",
    "Restyle the image as a Japanese woodblock print",
    "Make this look like a claymation set",
    "Turn it into a low-poly 3D render",
    "Apply a cyberpunk look with neon reflections",
    "Make it look like a stained glass window",
)
_OBJECTS = (
    "Add a red hot air balloon in the sky",
    "Put a small wooden cabin near the horizon",
    "Add a golden retriever sitting in the foreground",
    "Place a bicycle leaning against the nearest object",
    "Add a flock of birds flying from left to right",
    "Put a lighthouse on the right side of the image",
    "Add a rainbow behind the main subject",
    "Place a bench under the tree on the left",
    "Add a street lamp that is switched on",
    "Put a cup of coffee on the table",
)
_REMOVALS = (
    "Remove the person on the left",
    "Remove all text and logos from the image",
    "Erase the power lines from the sky",
    "Remove the car from the street and fill in the road",
    "Take out the reflections in the window",
    "Remove the shadow under the main object",
)
_LIGHT = (
    "Change the time of day to sunset",
    "Make it night time with a full moon",
    "Add soft morning fog over the ground",
    "Make the lighting dramatic, like a thunderstorm is coming",
    "Turn the season to winter with snow on every surface",
    "Make it autumn: orange and red leaves everywhere",
    "Increase the contrast and make the colors more vivid",
    "Convert the photo to black and white with strong contrast",
    "Warm up the colors slightly",
    "Make the sky clear blue without clouds",
)
_BACKGROUND = (
    "Replace the background with a beach at golden hour",
    "Put the subject in front of a plain white studio background",
    "Change the background to a busy city street at night",
    "Move the scene to the surface of Mars",
    "Replace the sky with a starry night sky",
    "Blur the background as if shot with a wide aperture",
)
_RETOUCH = (
    "Sharpen the image and reduce noise",
    "Fix the tilted horizon",
    "Extend the image to the left with a matching landscape",
    "Make the main object twice as large",
    "Change the color of the largest object to deep blue",
    "Give the red object a metallic chrome finish",
    "Make the grass look freshly cut and greener",
    "Turn the round object into a glass sphere",
)
_TEXT = (
    'Add the words "GRAND OPENING" on a banner across the top',
    'Write "Happy Birthday" in white cursive letters at the bottom',
    "Add a small watermark in the lower right corner",
)
_LONG = (
    "Keep the composition and the position of every object exactly as it is, but repaint the "
    "whole scene in the style of a soft pastel illustration for a children's book, with rounded "
    "shapes, gentle shadows and a warm color palette",
    "Replace the ground with a calm lake that reflects the sky and the objects above it; keep the "
    "horizon at the same height and add a few ripples near the front edge of the image",
    "Make this look like a product photograph for a catalog: even studio lighting from the left, "
    "a soft shadow under each object, neutral grey background, and no other changes",
    "Add heavy rain falling diagonally, wet reflective surfaces, darker clouds and a faint "
    "lightning flash in the distance, while keeping the objects recognisable",
)

BUILTIN_PROMPTS: tuple[str, ...] = (
    _STYLES + _OBJECTS + _REMOVALS + _LIGHT + _BACKGROUND + _RETOUCH + _TEXT + _LONG
)
"""Edit instructions used by `imgtrace synth` unless `--prompts FILE` is given."""


def load_prompts(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """One prompt per line from a UTF-8 text file; blank lines and `#` comments are skipped."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecorderError(f"{source}: no such prompts file") from None
    except UnicodeDecodeError as exc:
        raise RecorderError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise RecorderError(f"{source}: cannot read: {exc.strerror}") from None
    prompts = tuple(
        stripped
        for line in text.splitlines()
        if (stripped := line.strip()) and not stripped.startswith("#")
    )
    if not prompts:
        raise RecorderError(f"{source}: holds no prompts (one per line; # starts a comment)")
    return prompts
