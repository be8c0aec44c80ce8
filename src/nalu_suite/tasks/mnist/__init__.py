"""MNIST digit counting and digit addition over image sequences (Trask et al. 2018 §4.2, Table 2), and the
sequential MNIST product (Madsen & Johansen 2020 §4.2, :mod:`.product`).

A sample is a sequence of MNIST images; the target is only known for the whole sequence:

* ``mnist_count``: the 10-vector of how many images of each digit the sequence holds;
* ``mnist_add``: the sum of the digits.

No digit labels reach the model: it is trained end to end on the sequence targets, with MSE.

**Data.** MNIST training images ``[0, 60000 - val_images)`` form the training pool, the last
``val_images`` (5000, as Madsen & Johansen) the validation pool, the 10,000 MNIST test images the test
pool. Training sequences (length ``train_length`` = 10) are fresh every step; validation holds
``val_sequences`` fixed length-10 sequences; the tests hold ``test_sequences[i]`` fixed sequences of
length ``test_lengths[i]`` (1, 10, 100, 1000). Sequences are cut from back-to-back random permutations
of their pool, so every image of a pool is used equally often (at length 1 with 10,000 sequences: each
test image exactly once, which makes ``test/len1/acc`` the classifier's MNIST test accuracy).

**Model** (:class:`DigitSequenceModel`): the PyTorch-example CNN (``encoders/cnn.py``) turns every image
into a *soft digit*, the softmax over its 10 scores. The core reads *channels*: for counting the 10
entries of the soft digit, for addition one channel, the soft digit's value ``v · softmax``
(``task.digit_value``: ``learned`` = a free linear map 10 -> 1, ``expectation`` = fixed v = (0, ..., 9),
the softmax expectation of Madsen & Johansen's code). The recurrent core is ``unit.first`` as a cell,
``h_t = first([x_t, h_{t-1}])``, and ``unit.second`` maps its final state to the output, as in
``recurrent_arith``. ``task.core``:

* ``shared`` (default): one cell with 1 input and one ``second`` with 1 output, the same weights for every
  channel; each channel is a sequence of numbers to accumulate (for counting: digit k's probability).
* ``joint``: one cell reads all channels at once (10 inputs for counting) and ``second`` maps its state to
  all outputs; the cell could mix digits, which it must unlearn.

State size: ``task.hidden_size`` per channel for arithmetic units (1: one accumulator),
``task.rnn_hidden_size`` for lstm / gru / rnn_tanh / rnn_relu.

**Training schedule** (``docs/mnist.md``). Both parts start random. With one learning
rate the CNN commits first: before the core has learned to add, the fastest way down the loss is to put
every image into the same softmax slot, the softmax saturates and its gradient vanishes (counting: within
100 steps). So the CNN learns ``task.cnn_lr_scale`` (0.1) times slower than the core
(:class:`SlowAveragedModule`), and the first ``task.cnn_warmup_steps`` steps (400 in both tasks' configs)
train the core alone: without them addition collapses within 20 steps, and counting did on one seed of
three (seed 2). The core then settles on
an accumulator and the CNN learns the digits from the sequence targets. Evaluation uses a moving average
of the CNN's weights (``task.cnn_average``), which takes out the noise of the constant learning rate.

**Cheap long-sequence evaluation.** In evaluation (``model.eval()`` and no gradients) the CNN runs once
per distinct image: :meth:`DigitSequenceModel.cached_digit_features` keeps the features of every image
seen since the weights last changed, so a length-1000 test costs one CNN pass over the 10,000 test images
plus the recurrent core over the sequences, instead of 10^6 CNN passes.

**Metrics** per split: ``mae`` (mean absolute error per output value: for counting, averaged over the 10
counts), ``acc`` (the rounded prediction equals the target; for counting all 10 counts right),
``rel_err`` (sum of absolute errors / sum of absolute targets, i.e. MAE / mean |target|) and ``mse``.

**Modules.** :mod:`.data` reads, decompresses and checks the MNIST files; :mod:`.datamodule` serves the
batches (Lightning); :mod:`.sequences` draws image sequences and their targets; :mod:`.model` holds
:class:`DigitSequenceModel`; :mod:`.task` the tasks (``mnist_count``, ``mnist_add``); :mod:`.product` the
running product of digits 1-9 (``mnist_prod``: ``cumulative`` outputs, a one-number multiplicative cell,
the ``solved`` reference core, R_z and success per length). The CNN's slow,
averaged training is :class:`nalu_suite.slow_averaged.SlowAveragedModule`.
"""
