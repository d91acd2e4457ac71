"""Vision and language data (Gato's 15%): captioning, VQA and text, offline and in standard formats.

Three modules, each depending only on the ones before it: `formats` reads and writes COCO
captions, VQAv2 and JSONL (the records Caption and QA); `builders` generates the offline sets and
holds their catalogue SETS; `sets` writes and imports sets on disk with their cards, finds and
loads them, and turns them into training sources. Nothing is re-exported here: import from the
module that holds a name.
"""
