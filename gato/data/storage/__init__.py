"""Expert episodes on disk: Parquet shards in JAT's column layout, one episode per row.

Why this layout:
- JAT compatibility: the columns are JAT's (text_observations, image_observations,
  discrete_observations, continuous_observations, discrete_actions, continuous_actions, rewards),
  the steps hold no final observation, and `jat_task_dataset` reads a local copy of JAT's
  published Parquet files through the same decoding code as our own shards.
- The episode's end (format version 2, optional): `final_<observation column>` columns hold the
  observation after the last action (a one-step list per episode, encoded as the steps are) and
  `truncated` (bool, null if unknown) whether a time limit rather than the task ended it; `gato
  collect` and the Minari import write them, Minari export reads them (gato/data/minari_io.py).
  Version 1 folders have neither and read as before.
- Atomic shards: every shard and card.json is written to a temporary file in its folder, then
  os.replace'd: a killed collection leaves complete shards only. The card's per-split summary
  is refreshed at most once a second while shards are written (replacing an existing file can
  cost milliseconds, as much as a shard of CartPole), and always on close; a reopened writer
  recomputes it from the shards.
- Resumable: one extra int64 column, `seed` (the episode's reset seed, null if none), lets a
  reopened `DatasetWriter` know which episodes are done; it continues with the next shard index.

Layout: <root>/<domain>/<task>/card.json and <root>/<domain>/<task>/<split>/shard-NNNNN.parquet.
Images are written as list<binary>, one raw uint8 (H, W, C) buffer per step (shape in the card
and in the field metadata), which reads about 5x faster than JAT's nested
list<list<list<list<uint8>>>>; the reader accepts that layout and Hugging Face Image structs too.
"""

from gato.data.storage.format import (ACT_COLUMNS, EXECUTED_COLUMNS, FINAL_COLUMNS, FORMAT_VERSION, IMAGE_COL,
                                      OBS_COLUMNS, SPLITS, TRUNCATED, columns, episode_to_row, row_to_episode,
                                      space_from_json, space_to_json)
from gato.data.storage.reader import JatTaskDataset, TaskDataset, filter_by_return, jat_task_dataset, return_bar
from gato.data.storage.writer import DatasetWriter, task_folder, update_card

__all__ = ["ACT_COLUMNS", "EXECUTED_COLUMNS", "FINAL_COLUMNS", "FORMAT_VERSION", "IMAGE_COL", "OBS_COLUMNS", "SPLITS",
           "TRUNCATED", "DatasetWriter", "JatTaskDataset", "TaskDataset", "columns", "episode_to_row",
           "filter_by_return", "jat_task_dataset", "return_bar", "row_to_episode", "space_from_json", "space_to_json",
           "task_folder", "update_card"]
