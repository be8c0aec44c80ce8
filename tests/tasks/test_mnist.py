"""MNIST counting / addition (paper §4.2): files, sequences, cached evaluation, a short training run.

Everything runs on tiny IDX files the tests write themselves (``synthetic_mnist``): 28x28 images whose
digit is a bright bar at a row that depends on the label, so a CNN learns them in a few hundred steps.
"""

from __future__ import annotations

import gzip
import json

import pytest
import torch

from nalu_suite.errors import ConfigError
from nalu_suite.slow_averaged import SlowAveragedModule
from nalu_suite.tasks.mnist import data as mnist_data
from nalu_suite.tasks.mnist.data import (
    MNIST_FILES,
    MnistDigits,
    MnistFileError,
    load_mnist,
    prepare_mnist,
    write_idx_gz,
)
from nalu_suite.tasks.mnist.model import DigitSequenceModel
from nalu_suite.tasks.mnist.sequences import count_targets, draw_sequences, sum_targets
from nalu_suite.tasks.mnist.task import MnistAddTask, MnistCountTask

N_TRAIN, N_TEST, N_VAL = 60, 20, 10
UNIT_NAU = {"name": "nau", "first": "nau", "second": "nau", "first_options": {}, "second_options": {}}
UNIT_LSTM = {"name": "lstm", "first": "lstm", "second": "linear", "first_options": {}, "second_options": {}}


def synthetic_images(labels: torch.Tensor, seed: int) -> torch.Tensor:
    """``uint8 (N, 28, 28)``: low noise plus a bright bar in rows ``2k + 4, 2k + 5`` for digit ``k``."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 40, (len(labels), 28, 28), generator=g, dtype=torch.uint8)
    for i, k in enumerate(labels.tolist()):
        images[i, 2 * k + 4 : 2 * k + 6, 4:24] = 255
    return images


def write_synthetic_mnist(folder):
    """The four files as gzipped IDX in ``folder``: 60 training and 20 test images."""
    for split, n, seed in (("train", N_TRAIN, 1), ("t10k", N_TEST, 2)):
        labels = torch.arange(n) % 10
        write_idx_gz(folder / f"{split}-labels-idx1-ubyte.gz", labels)
        write_idx_gz(folder / f"{split}-images-idx3-ubyte.gz", synthetic_images(labels, seed))
    return folder


@pytest.fixture
def mnist_dir(tmp_path):
    """``tmp_path/data`` holding the four files in ``mnist/`` (:func:`write_synthetic_mnist`)."""
    data = tmp_path / "data"
    write_synthetic_mnist(data / "mnist")
    return data


def task_config(**overrides) -> dict:
    cfg = {
        "verify_checksums": False,
        "train_length": 10,
        "val_images": N_VAL,
        "val_sequences": 8,
        "test_lengths": [1, 10, 100, 1000],
        "test_sequences": [N_TEST, 8, 4, 2],
        "cnn": "2018",
        "cnn_dropout": 0.0,
        "cnn_lr_scale": 0.1,
        "core": "shared",
        "hidden_size": 1,
        "rnn_hidden_size": 4,
    }
    return cfg | overrides


def count_task(mnist_dir, unit=UNIT_NAU, **overrides) -> MnistCountTask:
    task = MnistCountTask(task_config(name="mnist_count", data_dir=str(mnist_dir), **overrides), unit, seed=0)
    task.require_digits()
    return task


def add_task(mnist_dir, unit=UNIT_NAU, **overrides) -> MnistAddTask:
    cfg = task_config(name="mnist_add", data_dir=str(mnist_dir), digit_value="learned") | overrides
    task = MnistAddTask(cfg, unit, seed=0)
    task.require_digits()
    return task


# --- files ---------------------------------------------------------------------------------------
def test_prepare_decompresses_once_into_torchvision_layout(mnist_dir):
    raw = prepare_mnist(mnist_dir, verify_checksums=False)
    assert raw == mnist_dir / "MNIST" / "raw"
    stamps = {spec.name: (raw / spec.name).stat().st_mtime_ns for spec in MNIST_FILES}
    prepare_mnist(mnist_dir, verify_checksums=False)
    assert {spec.name: (raw / spec.name).stat().st_mtime_ns for spec in MNIST_FILES} == stamps
    digits = load_mnist(mnist_dir)
    assert digits.images.shape == (N_TRAIN + N_TEST, 28, 28) and digits.images.dtype == torch.uint8
    assert digits.n_train == N_TRAIN and digits.n_test == N_TEST
    assert torch.equal(digits.labels, torch.cat([torch.arange(N_TRAIN) % 10, torch.arange(N_TEST) % 10]))
    assert torch.equal(digits.images[N_TRAIN:], synthetic_images(torch.arange(N_TEST) % 10, seed=2))


def test_missing_file_names_the_file_and_how_to_get_it(mnist_dir):
    (mnist_dir / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(MnistFileError, match=r"t10k-labels-idx1-ubyte\.gz is missing") as err:
        prepare_mnist(mnist_dir, verify_checksums=False)
    assert "git checkout" in str(err.value) and "ossci-datasets" in str(err.value)


def test_truncated_gzip_is_reported_as_corrupt(mnist_dir):
    gz = mnist_dir / "mnist" / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:200])
    with pytest.raises(MnistFileError, match=r"train-images-idx3-ubyte\.gz: cannot decompress"):
        prepare_mnist(mnist_dir, verify_checksums=False)
    assert not list((mnist_dir / "MNIST" / "raw").glob(".train-images*")), "no temporary file left behind"


def test_wrong_header_and_short_payload_name_the_file(mnist_dir):
    write_idx_gz(mnist_dir / "mnist" / "train-labels-idx1-ubyte.gz", torch.zeros(N_TRAIN, 28, 28))
    with pytest.raises(
        MnistFileError, match=r"train-labels-idx1-ubyte\.gz decompresses to a bad file.*magic"
    ):
        prepare_mnist(mnist_dir, verify_checksums=False)
    labels = torch.arange(N_TRAIN) % 10
    raw = gzip.compress(bytes([0, 0, 8, 1]) + (N_TRAIN + 5).to_bytes(4, "big") + bytes(labels.tolist()))
    (mnist_dir / "mnist" / "train-labels-idx1-ubyte.gz").write_bytes(raw)
    with pytest.raises(MnistFileError, match=r"train-labels-idx1-ubyte.*announces 65 labels"):
        prepare_mnist(mnist_dir, verify_checksums=False)


def test_image_and_label_counts_must_agree(mnist_dir):
    write_idx_gz(mnist_dir / "mnist" / "t10k-labels-idx1-ubyte.gz", torch.zeros(N_TEST - 1))
    with pytest.raises(MnistFileError, match=r"t10k has 20 images but 19 labels"):
        prepare_mnist(mnist_dir, verify_checksums=False)


def test_checksums_reject_files_that_are_not_the_real_mnist(mnist_dir):
    with pytest.raises(
        MnistFileError, match=r"train-images-idx3-ubyte\.gz: decompressed md5 is [0-9a-f]{32}"
    ):
        prepare_mnist(mnist_dir, verify_checksums=True)


def test_a_damaged_decompressed_file_is_rebuilt_from_the_archive(mnist_dir):
    raw = prepare_mnist(mnist_dir, verify_checksums=False)
    (raw / "t10k-images-idx3-ubyte").write_bytes(b"\0" * 100)
    prepare_mnist(mnist_dir, verify_checksums=False)
    assert torch.equal(load_mnist(mnist_dir).images[N_TRAIN:], synthetic_images(torch.arange(N_TEST) % 10, 2))


def test_without_local_files_the_bundled_copy_is_decompressed_into_data_dir(tmp_path, monkeypatch):
    bundled = write_synthetic_mnist(tmp_path / "site-packages" / "nalu_suite" / "data" / "mnist")
    monkeypatch.setattr(mnist_data, "bundled_mnist_dir", lambda: bundled)
    data_dir = tmp_path / "empty"
    assert mnist_data.source_dir(data_dir) == bundled
    raw = prepare_mnist(data_dir, verify_checksums=False)
    assert raw == data_dir / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(spec.name for spec in MNIST_FILES)
    assert load_mnist(data_dir).n_train == N_TRAIN
    assert sorted(p.name for p in bundled.iterdir()) == sorted(f"{s.name}.gz" for s in MNIST_FILES)


def test_local_files_take_precedence_over_the_bundled_copy(mnist_dir, monkeypatch):
    def no_bundle():
        raise AssertionError("the bundled copy must not be read when <data_dir>/mnist/ has the files")

    monkeypatch.setattr(mnist_data, "bundled_mnist_dir", no_bundle)
    assert mnist_data.source_dir(mnist_dir) == mnist_dir / "mnist"
    prepare_mnist(mnist_dir, verify_checksums=False)


def test_a_corrupt_bundled_file_names_the_file_and_how_to_restore_it(tmp_path, monkeypatch):
    bundled = write_synthetic_mnist(tmp_path / "bundle")
    gz = bundled / "t10k-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:100])
    monkeypatch.setattr(mnist_data, "bundled_mnist_dir", lambda: bundled)
    with pytest.raises(MnistFileError, match=r"bundle/t10k-images-idx3-ubyte\.gz: cannot decompress") as err:
        prepare_mnist(tmp_path / "empty", verify_checksums=False)
    assert "reinstall nalu-suite" in str(err.value) and "ossci-datasets" in str(err.value)


def test_no_local_files_and_no_bundled_copy_says_where_to_put_them(tmp_path, monkeypatch):
    def missing():
        raise FileNotFoundError(
            "nalu-suite is incomplete: none of /x/data/mnist exists; reinstall the package"
        )

    monkeypatch.setattr(mnist_data, "bundled_mnist_dir", missing)
    with pytest.raises(
        MnistFileError, match=r"no MNIST files in .*empty/mnist/ and nalu-suite is incomplete"
    ):
        prepare_mnist(tmp_path / "empty", verify_checksums=False)


def test_load_before_prepare_says_what_to_do(tmp_path):
    with pytest.raises(MnistFileError, match="run prepare_mnist"):
        load_mnist(tmp_path)


# --- sequences -----------------------------------------------------------------------------------
def test_draw_sequences_uses_every_pool_image_evenly():
    pool = torch.arange(100, 137)
    seqs = draw_sequences(pool, n=25, length=10, g=torch.Generator().manual_seed(0))
    assert seqs.shape == (25, 10)
    uses = torch.bincount(seqs.flatten() - 100, minlength=len(pool))
    assert set(uses.tolist()) <= {250 // 37, 250 // 37 + 1} and int(uses.sum()) == 250
    once = draw_sequences(pool, n=37, length=1, g=torch.Generator().manual_seed(1))
    assert sorted(once.flatten().tolist()) == pool.tolist()


def test_targets_count_and_sum_the_digits():
    labels = torch.tensor([[3, 3, 0, 9], [1, 2, 2, 2]])
    assert count_targets(labels).tolist() == [[1, 0, 0, 2, 0, 0, 0, 0, 0, 1], [0, 1, 3, 0, 0, 0, 0, 0, 0, 0]]
    assert sum_targets(labels).tolist() == [[15.0], [7.0]]


def test_pools_are_disjoint_and_sequences_stay_in_theirs(mnist_dir):
    task = count_task(mnist_dir)
    pools = {name: set(task.pool(name).tolist()) for name in ("train", "val", "test")}
    assert pools["train"].isdisjoint(pools["val"]) and pools["train"].isdisjoint(pools["test"])
    assert pools["val"].isdisjoint(pools["test"])
    assert pools["test"] == set(range(N_TRAIN, N_TRAIN + N_TEST)), "test sequences use the MNIST test images"
    assert len(pools["val"]) == N_VAL and max(pools["val"]) == N_TRAIN - 1
    train_idx, train_y = task.sample_train(torch.Generator().manual_seed(0), 16)
    assert train_idx.shape == (16, 10) and set(train_idx.flatten().tolist()) <= pools["train"]
    assert torch.equal(train_y, count_targets(task.digits.labels[train_idx]))
    val_idx, _ = task.fixed_set("val")
    assert val_idx.shape == (8, 10) and set(val_idx.flatten().tolist()) <= pools["val"]
    for split, length, n in zip(task.test_splits, (1, 10, 100, 1000), (N_TEST, 8, 4, 2), strict=True):
        idx, y = task.fixed_set(split)
        assert split == f"test/len{length}" and idx.shape == (n, length)
        assert set(idx.flatten().tolist()) <= pools["test"]
        assert torch.equal(y.sum(dim=1), torch.full((n,), float(length)))  # counts add up to the length
    assert torch.equal(task.fixed_set("test/len10")[0], count_task(mnist_dir).fixed_set("test/len10")[0])


def test_addition_targets_are_digit_sums(mnist_dir):
    task = add_task(mnist_dir)
    idx, y = task.fixed_set("test/len100")
    assert y.shape == (4, 1) and torch.equal(y[:, 0], task.digits.labels[idx].sum(dim=1).float())


def test_preview_shows_the_digits_behind_each_target(mnist_dir):
    for task in (count_task(mnist_dir), add_task(mnist_dir)):
        for row in task.preview(3):
            digits = [int(d) for d in row["text"].split("digits ")[1].split(" ->")[0].split()]
            assert digits == task.digits.labels[row["inputs"]].tolist() and len(digits) == 10
            expected = count_targets(torch.tensor([digits])) if task.out_features == 10 else sum(digits)
            assert torch.equal(
                torch.tensor(row["target"]).float(), torch.as_tensor(expected).float().squeeze()
            )


# --- model and cached evaluation ----------------------------------------------------------------
class CountingCNN(torch.nn.Module):
    """Wraps a CNN and records how many images each call encodes."""

    def __init__(self, cnn):
        super().__init__()
        self.cnn = cnn
        self.calls: list[int] = []

    def forward(self, images):
        self.calls.append(images.reshape(-1, 28, 28).shape[0])
        return self.cnn(images)


@pytest.mark.parametrize(
    ("make_task", "unit", "core", "average"),
    [
        (count_task, UNIT_NAU, "shared", 0.0),
        (count_task, UNIT_LSTM, "joint", 0.9),
        (add_task, UNIT_LSTM, "shared", 0.0),
    ],
)
def test_cached_evaluation_equals_the_plain_loop(mnist_dir, make_task, unit, core, average):
    torch.manual_seed(0)
    task = make_task(mnist_dir, unit=unit, core=core, cnn_average=average)
    model = task.build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(3 if average else 0):  # so the averaged weights differ from the current ones
        optimizer.zero_grad()
        task.loss(model, task.sample_train(torch.Generator().manual_seed(0), 4)).backward()
        optimizer.step()
    model.eval()
    model.cnn = CountingCNN(model.cnn)
    indices, target = task.fixed_set("test/len100")
    with torch.no_grad():
        plain = model(task.digits.images[indices])
        model.cnn.calls.clear()
        cached, got_target = task.predict(model, (indices, target))
        assert sum(model.cnn.calls) == len(torch.unique(indices)), "each distinct image is encoded once"
        task.predict(model, (indices, target))
    assert sum(model.cnn.calls) == len(torch.unique(indices)), "a second batch reuses the cache"
    torch.testing.assert_close(cached, plain, rtol=1e-5, atol=1e-4)
    assert got_target is target


def test_cache_is_refreshed_when_the_weights_change(mnist_dir):
    torch.manual_seed(0)
    task = count_task(mnist_dir)
    model = task.build_model().eval()
    with torch.no_grad():  # the exact accumulator, so the prediction is the sum of the soft digits
        model.cell.unit.W.fill_(1.0)
        model.second.W.fill_(1.0)
    indices, target = task.fixed_set("test/len10")
    with torch.no_grad():
        before, _ = task.predict(model, (indices, target))
        model.cnn.module.fc2.bias[3] += 20.0  # an in-place change, as an optimiser step makes
        after_edit, _ = task.predict(model, (indices, target))
        torch.testing.assert_close(after_edit, model(task.digits.images[indices]), rtol=1e-5, atol=1e-4)
        assert (after_edit - before).abs().max() > 0.1
        model.train()
        task.loss(model, task.sample_train(torch.Generator().manual_seed(0), 8))
        model.cnn.module.fc2.weight.data.mul_(0.0)  # bypasses the version counter: only eval() notices
        model.eval()
        after_round, _ = task.predict(model, (indices, target))
        torch.testing.assert_close(after_round, model(task.digits.images[indices]), rtol=1e-5, atol=1e-4)
    # with fc2.weight = 0 every image gets the same soft digit, so every sequence the same prediction
    torch.testing.assert_close(after_round, after_round[:1].expand_as(after_round))
    assert not torch.allclose(after_edit, after_edit[:1].expand_as(after_edit))


def test_training_mode_never_uses_the_cache(mnist_dir):
    task = count_task(mnist_dir)
    model = task.build_model().train()
    with pytest.raises(RuntimeError, match="model.eval"):
        model.cached_digit_features(task.digits.images, torch.zeros(1, 1, dtype=torch.long))
    indices, target = task.fixed_set("val")
    pred, _ = task.predict(model, (indices, target))
    assert pred.requires_grad


def test_slowed_module_scales_adams_step():
    torch.manual_seed(0)
    plain, inner = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    inner.load_state_dict(plain.state_dict())
    start = plain.weight.detach().clone()
    slowed = SlowAveragedModule(inner, lr_scale=0.1)
    x = torch.randn(5, 3)
    torch.testing.assert_close(slowed(x), plain(x))
    for module in (plain, slowed):
        optimizer = torch.optim.Adam(module.parameters(), lr=0.01)
        module(x).sum().backward()
        optimizer.step()
    # Adam's first step moves every parameter by lr; the slowed module's effective weight by lr_scale * lr
    torch.testing.assert_close((plain.weight - start).abs(), torch.full((2, 3), 0.01), rtol=1e-3, atol=0)
    moved = (inner.weight * 0.1 - start).abs()
    torch.testing.assert_close(moved, torch.full((2, 3), 0.001), rtol=1e-3, atol=0)


def test_averaged_module_evaluates_with_the_moving_average():
    torch.manual_seed(0)
    init = torch.nn.Linear(2, 1, bias=False)
    expected = init.weight.detach().clone()
    module = SlowAveragedModule(init, lr_scale=0.5, average=0.5)
    x = torch.tensor([[1.0, 2.0]])
    for n, value in enumerate((1.0, 3.0, 5.0, 7.0)):
        with torch.no_grad():
            module.module.weight.fill_(value / 0.5)  # stored theta = w / lr_scale, so w = value
        module.train()(x)  # folds the current weight into the average
        decay = min(0.5, (1 + n) / (10 + n))
        expected = decay * expected + (1 - decay) * value
    torch.testing.assert_close(module.eval()(x), x @ expected.T)
    torch.testing.assert_close(module.train()(x), x @ torch.full((2, 1), 7.0))


def test_warm_up_trains_the_core_alone_then_the_cnn(mnist_dir):
    torch.manual_seed(0)
    task = add_task(mnist_dir, cnn_warmup_steps=3, digit_value="expectation")
    model = task.build_model().train()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(0)

    def step() -> tuple[torch.Tensor, torch.Tensor]:
        cnn, core = model.cnn.module.fc2.weight.detach().clone(), model.cell.unit.W.detach().clone()
        optimizer.zero_grad()
        task.loss(model, task.sample_train(g, 4)).backward()
        optimizer.step()
        return (model.cnn.module.fc2.weight - cnn).abs().max(), (model.cell.unit.W - core).abs().max()

    for _ in range(3):
        cnn_moved, core_moved = step()
        assert cnn_moved == 0 and core_moved > 0
    cnn_moved, _ = step()
    assert cnn_moved > 0 and int(model.train_steps) == 4
    assert "train_steps" in model.state_dict(), "a resumed run continues the schedule"


def test_model_shapes_for_every_digit_value_and_core(mnist_dir):
    images = load_mnist(prepare_mnist(mnist_dir, verify_checksums=False).parents[1]).images[:6]
    for out, value in ((10, None), (1, "learned"), (1, "expectation"), (1, "regression")):
        for unit in (UNIT_NAU, UNIT_LSTM):
            for core in ("shared", "joint"):
                model = DigitSequenceModel(
                    unit=unit, out_features=out, hidden_size=3, digit_value=value, core=core
                )
                assert model(images.reshape(2, 3, 28, 28)).shape == (2, out)
                assert model.digit_features(images).shape == (6, 10 if value is None else 1)


# --- config --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"core": "both"}, r"task.core='both' is not valid; choose one of: shared, joint"),
        ({"cnn": "2020"}, r"task.cnn='2020' is not valid; choose one of: 2018, 2019"),
        ({"train_length": 0}, r"task.train_length=0 must be a positive integer"),
        ({"test_sequences": [1, 2]}, r"one sequence count per test length"),
        ({"cnn_lr_scale": 0}, r"task.cnn_lr_scale=0.0 must be > 0"),
    ],
)
def test_bad_task_values_raise_config_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        MnistCountTask(task_config(name="mnist_count") | override, UNIT_NAU, seed=0)


def test_bad_unit_and_digit_value_raise_config_errors():
    with pytest.raises(ConfigError, match=r"unit.first='nope' is not valid; choose one of: .*lstm.*nau"):
        MnistCountTask(task_config(name="mnist_count"), UNIT_NAU | {"first": "nope"}, seed=0)
    with pytest.raises(ConfigError, match=r"task.digit_value='onehot' is not valid; choose one of: learned"):
        MnistAddTask(task_config(name="mnist_add", digit_value="onehot"), UNIT_NAU, seed=0)


def test_too_many_validation_images_is_a_config_error(mnist_dir):
    task = MnistCountTask(task_config(name="mnist_count", val_images=N_TRAIN), UNIT_NAU, seed=0)
    with pytest.raises(ConfigError, match="leaves no training images"):
        task.attach_digits(MnistDigits(torch.zeros(80, 28, 28), torch.zeros(80), n_train=N_TRAIN))


# --- end to end ------------------------------------------------------------------------------------
def test_short_training_run_learns_to_count(mnist_dir, make_cfg, one_thread):
    from nalu_suite.train import train

    cfg = make_cfg(
        "task=mnist_count",
        "task.verify_checksums=false",
        f"task.val_images={N_VAL}",
        "task.val_sequences=16",
        f"task.test_sequences=[{N_TEST},16,8,4]",
        "task.cnn=2018",
        "task.cnn_warmup_steps=0",  # the default 400 is more than this short run
        "task.cnn_dropout=0",
        "batch_size=16",
        "trainer.max_steps=150",
        "trainer.val_check_interval=75",
        "callbacks.model_checkpoint=null",
    )
    assert cfg.paths.data_dir == str(mnist_dir)
    results = train(cfg)
    saved = json.loads((mnist_dir.parent / "run" / "results.json").read_text())
    assert saved["test/len10/mae"] == pytest.approx(results["test/len10/mae"])
    # predicting the mean count (1 per digit) gives MAE ~0.7 at length 10; a learned counter is far below
    assert results["test/len10/mae"] < 0.2
    assert results["test/len1/acc"] > 0.9, "the digit classifier was learned from counts alone"
    # an accumulator keeps its relative error at 100x the training length; a core that does not add
    # (e.g. one that learned the mean count of length 10) is ~100% off there
    assert results["test/len1000/rel_err"] < 2 * results["test/len10/rel_err"]
    for length in (1, 10, 100, 1000):
        assert {"mae", "acc", "rel_err", "mse"} <= {k.split("/")[-1] for k in results if f"len{length}/" in k}
