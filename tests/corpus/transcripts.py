"""What is said in the corpus recordings that have published transcripts (the sources and
licences are in ``sources/ATTRIBUTION.md``): used by the caption-language tests and
``bench/languages_bench.py``."""

from __future__ import annotations

#: ``sources/german_fleurs.ogg`` (FLEURS, German read speech), lower case as FLEURS prints it.
GERMAN = (
    "die angemessene nutzung von blogs kann schülerinnen und schüler befähigen analytischer und "
    "kritischer zu werden; durch die aktive reaktion auf internetmaterialien können die schülerinnen "
    "und schüler ihre positionen im kontext der texte anderer definieren und ihre eigenen perspektiven "
    "zu bestimmten themen darlegen oravec 2002"
)
#: ``sources/babble_zh.wav`` (FunASR's Mandarin example), in Simplified characters.
CHINESE = "欢迎大家来体验达摩院推出的语音识别模型"
