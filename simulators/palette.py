"""What the camera simulator draws, and what the simulator's marker model looks for.

The kitchen scenes are cartoons: flat-coloured counters, workers and props. Until the trained
kitchen models land (they are trained on real photos), the plumbing is exercised by
`models/sim-markers.onnx`, a real ONNX detector built by `models/build_sim_model.py` that scores
each 8x8 cell of its 320x320 letterboxed input by how close the cell's mean colour is to one of
the marker colours below. So the renderer and the model share these numbers:

- a marker colour must fill a region of at least `MIN_MARKER_PX` frame pixels in both directions
  where the violation is shown (so that, at the usual 640x480 -> 320 letterbox, it covers a whole
  8x8 cell of the model input), and must never fill such a region anywhere else in a scene;
- everything else the scene draws stays at least `MIN_DISTANCE` (Euclidean, 0..1 RGB scale) away
  from every marker colour.

Colours are BGR tuples of 0..255, OpenCV's order.
"""

from __future__ import annotations

from typing import Final

# Marker colours: the "signature" of each class the simulator's model detects.
BARE_FACE: Final = (96, 140, 222)  # a face without a mask: warm skin, a solid 50x40 px area
CIGARETTE_EMBER: Final = (20, 110, 255)  # the glowing tip and smoke puff of a cigarette, a 50 px disc
RAT_FUR: Final = (70, 78, 92)  # a rat's body, a 76x46 px ellipse

MARKERS: Final = {"without_mask": BARE_FACE, "cigarette": CIGARETTE_EMBER, "rat": RAT_FUR}

# Smallest extent (frame pixels, both directions) of a solid marker area.
MIN_MARKER_PX: Final = 32
# Smallest distance of any other colour in a scene from every marker colour (0..1 RGB scale).
MIN_DISTANCE: Final = 0.25

# Scene colours, all kept clear of the markers (checked by tests/simulators/test_palette.py).
WALL: Final = (214, 222, 226)
FLOOR: Final = (150, 160, 168)
COUNTER: Final = (196, 196, 190)
STEEL: Final = (180, 178, 170)
UNIFORM: Final = (245, 245, 245)
HAT: Final = (250, 250, 250)
MASK: Final = (235, 206, 160)  # a light-blue surgical mask
HAIR: Final = (30, 30, 35)
SKIN_BAND: Final = BARE_FACE  # the eyes band above a mask: skin, but only 10 px high
# The bin greens were (60, 120, 60) and (40, 90, 40): 0.21 and 0.24 from RAT_FUR, under MIN_DISTANCE.
BIN: Final = (60, 140, 50)
BIN_LID: Final = (40, 105, 25)
TILE_LINE: Final = (120, 130, 138)
