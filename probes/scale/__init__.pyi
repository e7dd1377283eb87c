"""The exports of probes.scale: what its ``__init__.py`` imports on first use (``probes.lazy``)."""

from probes.scale.evaluate import (
    GenerationTask as GenerationTask,
    FamilyMember as FamilyMember,
    evaluate_task as evaluate_task,
    family_tables as family_tables,
    model_rows as model_rows,
)
from probes.scale.ladder import (
    LadderConfig as LadderConfig,
    Rung as Rung,
    char_tokenizer as char_tokenizer,
    ladder_tasks as ladder_tasks,
    train_rung as train_rung,
)
