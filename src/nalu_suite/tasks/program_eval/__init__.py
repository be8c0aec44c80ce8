"""Program evaluation (Trask et al. 2018 §4.4, after Zaremba & Sutskever's "Learning to Execute").

    python train.py task=program_eval task.kind=addition      # print((A+B))
    python train.py task=program_eval task.kind=programs      # chained +, -, variables, if-statements
    python train.py task=program_eval unit=lstm               # baseline: an LSTM regresses the answer

Data (:mod:`.programs`): programs are generated as Python source; the target is what Python prints.
Training and validation literals have ``train_digits`` = 2 digits, uniform in [0, 100); the test split
``test/d{k}`` uses ``k``-digit literals (every literal has exactly ``k`` digits when ``k != train_digits``, so
the 3- and 4-digit tests lie entirely outside the training range).

What a model sees, one time step per token: structure tokens (``print``, ``(``, ``+``, ``if``, variable names,
newline, indentation...) are embedded; a literal is the token ``<num>`` with its value beside it as whole
numbers (the paper's choice, not character by character), in two channels:

* ``scaled``: ``value / value_scale`` (``value_scale`` = 100, so 2-digit literals land in [0, 1));
* ``relative``: ``value / max literal of the program``: the same distribution at every digit length.

Both channels are multiplied by ``value_gain`` (5) before they join the 32-dimensional embedding, so that
they are not drowned by it at initialisation.

Models (chosen by the ``unit`` config):

* **Configured unit**, the paper's model (``unit.first`` is not a recurrent cell: ``unit=nac``,
  ``unit=nalu``, ``unit=nau``...): a ``controller`` LSTM reads the program, with the ``relative`` channel
  only by default (``controller_inputs``), so its view of a program does not depend on the digit length. A
  hypernetwork maps its outputs to *all* raw parameters of a ``unit.second`` unit with one output and
  ``max_literals`` inputs (for NALU: ``W_hat, M_hat, G``), see :class:`ConfiguredUnitModel`. The per-program
  unit is applied (``torch.func.functional_call`` under ``vmap``) to the program's literals, in order of
  appearance, zero-padded to ``max_literals`` and divided by ``value_scale``; its output times ``value_scale``
  is the answer. ``unit.first`` is not used.
* **Direct regression** baselines (``unit.first`` a recurrent cell: ``unit=lstm``, ``unit=gru``,
  ``unit=rnn_tanh``, or ``unit=lstm unit.first=ugrnn unit.name=ugrnn`` for Collins et al.'s UGRNN): the cell
  reads the program with both value channels; ``value_scale`` times a ``unit.second`` readout (linear) of its
  last output is the answer.

``task.candidates`` (default 2) such models train side by side, each on its own loss, and the one with the
lower running loss on the (always fresh) training programs answers at validation and test
(:mod:`.candidates`): restarts in one run.

Loss: MSE of ``answer / value_scale``, plus the ``regularizer`` config's ramped weight times the model's
regulariser (for configured units: Madsen & Johansen's sparsity regulariser on the configured weights).
Metrics per split: ``exact`` (the rounded answer equals the target), ``digit_acc`` (:class:`ProgramMetric`),
``mae``, and ``selection`` = ``1 - exact + 1e-6 mae``, which picks the checkpoint that is tested (the fewest
wrong answers on the 2-digit validation set; ties go to the lower MAE).

Modules, in import order: :mod:`.programs` (generator and tokenizer), :mod:`.encoding` (programs to
tensors), :mod:`.reader` (the recurrent reader and the UGRNN cell), :mod:`.per_sample` (a unit with its own
parameters per sample), :mod:`.models` (configured unit, direct regression), :mod:`.candidates` (restarts),
:mod:`.metric` (``digit_acc``), :mod:`.task` (config checks, data, the task).
"""
