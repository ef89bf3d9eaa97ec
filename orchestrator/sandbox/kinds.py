"""The kinds of task the sandbox imitates, and which of them make music (two tracks)."""

from __future__ import annotations

from typing import Literal

Kind = Literal[
    "generate_music", "extend", "replace_section", "music_video", "wav", "vocal_removal", "lyrics"
]

MUSIC_FAMILY: frozenset[str] = frozenset({"generate_music", "extend", "replace_section"})
