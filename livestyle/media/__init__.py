"""Media phase: video in and out, stylizing files and the camera, previews and the built-in clip."""
