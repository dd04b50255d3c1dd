"""The embedded local engine: plan (pure) → timeline (pure) → ffmpeg render (impure).

:mod:`.timeline` builds a :class:`nemod.timeline.Timeline` from a plan and the media facts,
:mod:`.render` turns a timeline into one ffmpeg argument list, and
:class:`nemod.engine.local.LocalBackend` runs the steps.
"""
