"""Every task as a registered Gymnasium id: `import gato.gym`, then
`gymnasium.make("gato/control-cartpole-v0")` (task `control/cartpole`; `gato.gym.gym_id` maps a
task name to its id). The environment is the adapted one `gato collect` and `gato eval` use, with
the task's episode cap as `max_episode_steps`. A vector of them drives the agent, e.g.

    envs = gymnasium.vector.SyncVectorEnv([lambda: gymnasium.make("gato/control-cartpole-v0")] * 8)
    agent = GatoAgent(model, TaskSpec("control/cartpole", envs.single_observation_space,
                                      envs.single_action_space), num_envs=8)
    obs, _ = envs.reset(seed=0)
    obs, *_ = envs.step(np.asarray(agent.act(list(obs))))   # Box observations: rows of the array

(Dict observations come batched per key: `gymnasium.vector.utils.iterate` unbatches them.)
"""

from __future__ import annotations

import gymnasium as gym

from gato.envs import all_tasks, get_task


def gym_id(task_name: str) -> str:
    domain, name = task_name.split("/", 1)
    return f"gato/{domain}-{name}-v0"


def make_task(task: str, render_mode: str | None = None, **kwargs) -> gym.Env:
    return get_task(task).make(render_mode=render_mode, **kwargs)


def register_all() -> list[str]:
    """Register every task of every installed domain (idempotent); returns the ids."""
    ids = []
    for t in all_tasks():
        i = gym_id(t.name)
        if i not in gym.registry:
            gym.register(i, entry_point=make_task, kwargs={"task": t.name}, max_episode_steps=t.max_steps)
        ids.append(i)
    return ids


IDS = register_all()
