"""nemod: a watch-folder video automation daemon.

Files dropped into watched folders are matched against YAML rules, edited by a
backend (the embedded local engine or the NemoVideo cloud) and published as MP4s,
caption sidecars and a job log in output folders.
"""

__version__ = "0.1.0"
