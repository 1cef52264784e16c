"""Everything about training that depends on the kind of model: what one step computes (the losses, and the
discriminators' update when training adversarially), the discriminators and their optimiser, the random streams
outside torch's global one, and how the trained model is saved. The trainer owns everything else and never looks
inside a model."""

from __future__ import annotations

from vqaudio.training.config import TrainConfig
from vqaudio.training.tasks.base import StepResult, Task
from vqaudio.training.tasks.codec import CodecTask, load_teacher
from vqaudio.training.tasks.prior import PriorTask
from vqaudio.training.tasks.vocoder import VocoderTask

__all__ = ["CodecTask", "PriorTask", "StepResult", "Task", "VocoderTask", "build_task", "load_teacher"]


def build_task(config: TrainConfig) -> Task:
    if config.task == "prior":
        return PriorTask(config)
    return CodecTask(config) if config.task == "codec" else VocoderTask(config)
