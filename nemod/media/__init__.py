"""Media access: the one place nemod runs ffmpeg (:mod:`.ffmpeg`) and reads media headers (:mod:`.probe`)."""
