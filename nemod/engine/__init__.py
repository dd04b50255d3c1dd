"""The embedded local engine: plan (pure) → timeline draft (pure) → ffmpeg render (impure).

:mod:`.timeline` builds a NemoVideo-format draft from a plan and the media facts,
:mod:`.render` turns a draft into one ffmpeg argument list, and
:class:`nemod.engine.local.LocalBackend` runs the steps.
"""
