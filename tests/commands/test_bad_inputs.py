"""Bad input fails fast and clearly: a config value, annotation file, checkpoint, gallery or query
named with what is wrong, one `Error:` block and exit status 2, before any data or weights load."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.helpers import REPO_ROOT, assert_one_block, cli, compose_cfg, in_process, main_in_process, tiny_synthetic
from vop.commands.eval import evaluate_run
from vop.commands.train import train
from vop.config.check import check_config
from vop.config.choices import check_choices
from vop.config.command_line import check_command_line, quoted_free_text
from vop.data.annotations.common import AnnotationError, DataNotFoundError
from vop.data.annotations.msrvtt import load_msrvtt
from vop.data.split_checks import checked_train_split
from vop.engine import trainer as trainer_module
from vop.engine.checkpoint import CheckpointError, read_checkpoint
from vop.engine.finite_embeddings import NonFiniteError, require_finite
from vop.engine.rundir import HYDRA_FILES, no_folder_if_refused, run_name
from vop.engine.assembly import usable_splits
from vop.engine.training_faults import NonFiniteLossError
from vop.errors import ConfigError, InputError
from vop.models import weights
from vop.models.clip import CLIPVideoModel
from vop.models.released import ReleasedCheckpointError, read_state
from vop.retrieval.gallery import Gallery
from vop.retrieval.pipeline import RetrievalPipeline



# ------------------------------------------------------------------ configs
@pytest.mark.parametrize("override,needle", [
    ("method.lr=nan", "method.lr=nan is not allowed: expected a finite number >= 0"),
    ("trainer.epochs=-1", "trainer.epochs=-1 is not allowed: expected an integer >= 1"),
    ("trainer.epochs=0", "trainer.epochs=0 is not allowed"),
    ("trainer.epochs=two", "trainer.epochs=two is not allowed: expected an integer >= 1"),
    ("seed=abc", "seed=abc is not allowed: expected an integer"),
    ("data.num_frames=0", "data.num_frames=0 is not allowed: expected an integer >= 1"),
    ("data.batch_size=0", "data.batch_size=0 is not allowed: expected an integer >= 1"),
    ("data.train_sampling=random", "data.train_sampling=random is not allowed: expected one of uniform, rand, xpool_uniform, xpool_rand"),
    ("trainer.precision=fp8", "trainer.precision=fp8 is not allowed: expected one of auto, fp32, fp16, bf16"),
    ("trainer.device=gpu", "trainer.device=gpu is not allowed"),
    ("method.lr_new=-1e-5", "method.lr_new=-1e-05 is not allowed"),
    ("trainer.max_steps_per_epoch=true", "trainer.max_steps_per_epoch=True is not allowed"),
    ("trainer.checkpoint.best_metric=R@1", "best_metric=R@1 is not allowed: expected a name like t2v_R@1"),
])
def test_bad_values_name_key_value_and_what_is_allowed(override, needle, tmp_path):
    cfg = compose_cfg("train", ["model=clip_tiny", "data=synthetic", override], tmp_path)
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    assert needle in str(err.value)


def test_the_shipped_configs_pass(tmp_path):
    for name, extra in (("train", []), ("eval", []), ("retrieve", ["query=x", "gallery=g"]),
                        ("train", ["experiment=demo"]), ("train", ["method=vop_fc", "data=activitynet"])):
        check_config(compose_cfg(name, extra, tmp_path))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_fp16_on_a_cpu_is_refused(tmp_path):
    cfg = compose_cfg("train", ["trainer.precision=fp16"], tmp_path)
    with pytest.raises(ConfigError, match="trainer.precision=fp16 is not allowed on the CPU"):
        check_config(cfg)
    check_config(compose_cfg("train", ["trainer.precision=bf16"], tmp_path))


def test_more_frames_than_memory_holds_is_refused_before_any_data(tmp_path):
    cfg = compose_cfg("train", ["experiment=demo", "data.num_frames=1000"], tmp_path)
    with pytest.raises(ConfigError, match=r"data.num_frames=1000 with a batch of 50 videos needs 28.0 GiB"):
        train(cfg)
    assert not (tmp_path / "data").exists()  # nothing was generated or read


def test_cli_config_error_is_one_block_and_exit_2(tmp_path):
    proc = cli("train.py", "trainer.epochs=two", f"hydra.run.dir={tmp_path / 'run'}")
    assert_one_block(proc, "trainer.epochs=two is not allowed: expected an integer >= 1",
                     "(a traceback: HYDRA_FULL_ERROR=1)")
    full = cli("train.py", "trainer.epochs=two", f"hydra.run.dir={tmp_path / 'run2'}", HYDRA_FULL_ERROR="1")
    assert full.returncode != 0 and "Traceback" in full.stderr and "ConfigError" in full.stderr


# ------------------------------------------------------------------ non-finite numbers
def test_non_finite_embeddings_are_counted_and_refused():
    emb = torch.ones(10, 4)
    emb[[2, 7], 1] = float("nan")
    emb[5, 0] = float("inf")
    with pytest.raises(NonFiniteError, match="evaluating: 3 of 10 video embeddings hold NaN or inf"):
        require_finite(emb, "video", "evaluating")
    require_finite(torch.ones(3, 4), "caption", "evaluating")


def test_evaluating_a_nan_model_refuses_to_report_metrics(tmp_path):
    cfg = compose_cfg("eval", ["model=clip_tiny", "data=synthetic"], tmp_path)
    net = {k: v for k, v in cfg.model.net.items() if k not in ("_target_", "weights")}
    model = CLIPVideoModel.from_config(**net)
    nan = {k: torch.full_like(v, float("nan")) for k, v in model.state_dict().items()}
    save_file(nan, str(tmp_path / "nan.safetensors"))
    small = tiny_synthetic("zeroshot", tmp_path, [f"model.net.weights={tmp_path / 'nan.safetensors'}"], "eval")
    with pytest.raises(NonFiniteError, match=r"evaluating the test split: 16 of 16 video embeddings hold NaN"):
        evaluate_run(small)
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_a_run_with_no_finite_loss_fails_without_results(tmp_path, monkeypatch):
    real = trainer_module.info_nce
    monkeypatch.setattr(trainer_module, "info_nce", lambda *a: real(*a) * float("nan"))
    cfg = tiny_synthetic("bias", tmp_path, ["trainer.max_steps_per_epoch=3", "trainer.max_nonfinite_in_row=0"])
    with pytest.raises(NonFiniteLossError, match="all 3 training steps had a non-finite loss"):
        train(cfg)
    run = Path(cfg.paths.output_dir)
    assert not (run / "metrics.json").exists() and not (run / "checkpoint.safetensors").exists()


IDENTITY = {"model": "m", "method": "bias", "fingerprint": "f"}


def gallery(video_emb: torch.Tensor) -> Gallery:
    n = video_emb.shape[0]
    return Gallery(video_emb, torch.zeros(0, video_emb.shape[1]), [f"v{i}" for i in range(n)],
                   [f"v{i}.mp4" for i in range(n)], [], [], dict(IDENTITY), {})


def test_gallery_with_nan_or_truncated_is_refused(tmp_path):
    emb = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    emb[1] = float("nan")
    path = gallery(emb).save(tmp_path / "nan.safetensors")
    with pytest.raises(NonFiniteError, match=r"gallery=.*nan.safetensors: 1 of 4 video embeddings hold NaN"):
        Gallery.load(path)
    good = gallery(torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)).save(tmp_path / "good.safetensors")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[:-50])
    with pytest.raises(InputError, match=r"gallery=.*cut.safetensors is not a readable safetensors file"):
        Gallery.load(cut)


# ------------------------------------------------------------------ user errors
def write_msrvtt(tmp_path: Path, test_csv: bytes) -> Path:
    ann = tmp_path / "msrvtt" / "annotations"
    ann.mkdir(parents=True)
    (ann / "MSRVTT_train.9k.csv").write_text("video_id\nvideo0\n")
    (ann / "MSRVTT_data.json").write_text(json.dumps({"sentences": [{"video_id": "video0", "caption": "a"}]}))
    (ann / "MSRVTT_JSFUSION_test.csv").write_bytes(test_csv)
    return tmp_path / "msrvtt"


def test_non_utf8_annotation_names_path_and_offset_not_content(tmp_path):
    body = b"key,vid_key,video_id,sentence\n" + b"ret0,msr7,video7,a caf\xe9 scene " + b"x" * 100_000 + b"\n"
    root = write_msrvtt(tmp_path, body)
    with pytest.raises(AnnotationError) as err:
        load_msrvtt(root)
    message = str(err.value)
    offset = body.index(b"\xe9")  # 52
    assert f"MSRVTT_JSFUSION_test.csv is not UTF-8 text: byte 0xe9 at byte offset {offset} " in message
    assert len(message) < 400 and "xxxx" not in message and "caf" not in message


def test_header_only_test_csv_is_an_empty_split(tmp_path):
    root = write_msrvtt(tmp_path, b"key,vid_key,video_id,sentence\n")
    cfg = compose_cfg("eval", ["data=msrvtt9k", f"data.root={root}"], tmp_path)
    with pytest.raises(AnnotationError, match=r"test split read from .*MSRVTT_JSFUSION_test.csv has 0 videos"):
        usable_splits(cfg, None, load_msrvtt(root)["test"])


def test_empty_captions_fail_evaluation_and_are_skipped_in_training(tmp_path, caplog):
    root = write_msrvtt(tmp_path, b"key,vid_key,video_id,sentence\nr0,m0,video0,a dog\nr1,m1,video1,   \n")
    cfg = compose_cfg("eval", ["data=msrvtt9k", f"data.root={root}", "data.allow_missing_test=true"], tmp_path)
    splits = load_msrvtt(root)
    with pytest.raises(AnnotationError, match=r"has 1 empty caption\(s\), of video\(s\) video1"):
        usable_splits(cfg, None, splits["test"])
    with caplog.at_level("WARNING"):  # the same rows as training pairs: the blank one is dropped, counted
        kept = checked_train_split(splits["test"])
    assert kept.captions == ["a dog"] and kept.info["empty_captions_skipped"] == 1
    assert "1 empty caption(s) skipped (of 2)" in caplog.text


def test_video_ids_with_spaces_are_refused_naming_the_row(tmp_path):
    root = write_msrvtt(tmp_path, b"key,vid_key,video_id,sentence\nr0,m0,video0,a\nr1,m1, video7 ,b\n")
    with pytest.raises(AnnotationError, match=r'MSRVTT_JSFUSION_test.csv row 3: video id " video7 " has leading'):
        load_msrvtt(root)


def test_missing_dataset_is_one_block(tmp_path):
    cfg = compose_cfg("eval", ["model=clip_tiny", f"paths.data_dir={tmp_path}"], tmp_path)
    assert_one_block(in_process(lambda: evaluate_run(cfg)), f"MSR-VTT data root {tmp_path / 'msrvtt'} does not exist")


def test_cli_prepare_data_error_is_one_block(tmp_path):  # prepare_data.py's real process (exit status, Hydra)
    proc = cli("scripts/prepare_data.py", "data=msrvtt9k", f"data.root={tmp_path / 'msrvtt'}", cwd=tmp_path)
    assert_one_block(proc, f"missing {tmp_path / 'msrvtt' / 'annotations' / 'MSRVTT_train.9k.csv'}",
                     "Expected layout:\n")


def test_cli_empty_query_is_one_block(tmp_path):
    proc = cli("retrieve.py", "gallery=g.safetensors", "query=", cwd=tmp_path)
    assert_one_block(proc, "query= is empty")  # a blank query: test_empty_or_nan_query_through_the_python_api
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no run folder, no log file


def test_empty_or_nan_query_through_the_python_api():
    emb = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)

    class NanEncoder:  # a model with NaN weights
        identity = IDENTITY
        model = torch.nn.Linear(1, 1)  # where the pipeline puts its tensors (the CPU)
        model.text_conditioned = False  # a video's embedding does not depend on the text

        def encode_texts(self, texts):
            return torch.full((len(texts), 8), float("nan"))

    pipeline = RetrievalPipeline(NanEncoder(), gallery(emb))
    with pytest.raises(InputError, match="is empty"):
        pipeline("  ")
    with pytest.raises(NonFiniteError, match="query a dog: 1 of 1 query text embeddings hold NaN"):
        pipeline("a dog")


@pytest.fixture(scope="module")
def short_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("short")
    cfg = tiny_synthetic("bias", tmp, ["trainer.max_steps_per_epoch=2"])
    train(cfg)
    return Path(cfg.paths.output_dir)


def test_mismatched_checkpoint_names_both_methods(short_run, tmp_path):
    overrides = [f"ckpt={short_run}", "method=vop"]
    with pytest.raises(CheckpointError, match="trained with method=bias, but method=vop is configured"):
        evaluate_run(compose_cfg("eval", overrides, tmp_path), overrides=overrides)


def test_resume_file_passed_as_ckpt_says_what_it_is(short_run):
    resume = sorted((short_run / "resume").glob("step_*.safetensors"))[-1]
    with pytest.raises(CheckpointError, match=f"{resume} is a resume checkpoint: continue that run with resume="):
        read_checkpoint(resume)


def test_missing_checkpoint_is_a_user_error(tmp_path):
    with pytest.raises(CheckpointError, match=f"checkpoint not found: {tmp_path / 'nope'}"):
        read_checkpoint(tmp_path / "nope")


def test_pickled_released_checkpoint_names_the_file(tmp_path):
    path = tmp_path / "VoP_msrvtt9k.pth"
    torch.save({"model": torch.nn.Linear(2, 2)}, path)  # a pickled module, not a state dict of tensors
    with pytest.raises(ReleasedCheckpointError, match=f"{path} cannot be read as a state dict of tensors") as err:
        read_state(path)
    assert "weights_only" not in str(err.value)


def test_offline_without_weights_fails_once_naming_both_fixes(tmp_path, monkeypatch):
    from huggingface_hub import constants
    from transformers import CLIPModel

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(CLIPModel, "from_pretrained", lambda *a, **k: pytest.fail("the hub client was asked"))
    for offline, reachable, why in ((True, True, "HF_HUB_OFFLINE is set"), (False, False, "cannot be reached")):
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
        monkeypatch.setattr(weights, "hub_reachable", lambda timeout=5.0, ok=reachable: ok)
        with pytest.raises(weights.WeightsNotFoundError) as err:
            CLIPVideoModel.from_pretrained("openai/clip-vit-base-patch32")
        message = str(err.value)
        assert why in message and "`hf download openai/clip-vit-base-patch32`" in message
        assert "model.net.name_or_path=<folder>" in message and "huggingface-cli" not in message


def test_hub_probe_is_one_request(monkeypatch):
    calls = []

    def refuse(request, timeout):
        calls.append(timeout)
        raise OSError("no network")

    monkeypatch.setattr(weights.urllib.request, "urlopen", refuse)
    assert weights.hub_reachable() is False and calls == [5.0]


# ------------------------------------------------------------------ output folders
def test_eval_run_folder_is_named_after_the_checkpoint(short_run):
    assert run_name(str(short_run), "zeroshot", "msrvtt9k", []) == "bias_synthetic"
    assert run_name(str(short_run), "zeroshot", "msrvtt9k", ["data=msrvtt9k"]) == "bias_msrvtt9k"
    assert run_name(None, "zeroshot", "msrvtt9k") == "zeroshot_msrvtt9k"
    assert run_name("released.pth", "vop", "msrvtt9k") == "vop_msrvtt9k"


def test_cli_eval_of_a_run_prints_where_metrics_went(short_run, tmp_path):
    started = time.strftime("%Y-%m-%d")
    proc = cli("eval.py", f"ckpt={short_run}", "trainer.progress=false", f"paths.log_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [p for p in (tmp_path / "eval").iterdir() if p.name != "latest"]
    assert len(runs) == 1 and runs[0].name.startswith(started) and runs[0].name.endswith("_bias_synthetic")
    assert f"metrics in {runs[0] / 'metrics.json'}" in proc.stdout + proc.stderr
    assert (tmp_path / "eval" / "latest").resolve() == runs[0].resolve()


def test_missing_data_root_is_data_not_found(tmp_path):
    with pytest.raises(DataNotFoundError):
        load_msrvtt(tmp_path / "nothing")


def test_entry_points_report_user_errors_even_when_wrapped(capsys, monkeypatch):
    from hydra.errors import InstantiationException

    from vop.errors import exit_on_user_error

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)

    def wrapped():
        try:
            raise ConfigError("method.tuner.inter_from=20 is out of range")
        except ConfigError as err:
            raise InstantiationException("Error in call to target ...: ConfigError('...')") from err

    with pytest.raises(SystemExit) as stop:
        exit_on_user_error(wrapped)()
    assert stop.value.code == 2
    assert capsys.readouterr().err == "Error: method.tuner.inter_from=20 is out of range\n(a traceback: HYDRA_FULL_ERROR=1)\n"
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        exit_on_user_error(lambda: 1 / 0)()


@pytest.mark.parametrize("script", ["train.py", "eval.py", "retrieve.py"])
def test_an_unknown_group_option_is_one_block_and_exit_2(script, tmp_path):
    # Each entry point's own check before Hydra starts, in this interpreter (a real process below).
    proc = main_in_process(script, "method=bais", f"hydra.run.dir={tmp_path / 'run'}")
    assert_one_block(proc, "method=bais is not an option of the method group", "did you mean method=bias?")
    assert not (tmp_path / "run").exists()


def test_every_option_of_a_multirun_list_is_checked():
    check_choices(["method=bias,full", "data=msrvtt9k", "+trainer.epochs=3", "hydra.run.dir=x", "~logger"])
    with pytest.raises(ConfigError, match="data=msrvt9k is not an option of the data group"):
        check_choices(["method=bias,full", "data=msrvtt9k,msrvt9k"])


# Hydra's own errors (override syntax, a key the config lacks, `+` on a key it has) become one block.
HYDRA_ERRORS = [("trainer.epochs=[1", "no viable alternative at input '[1'"),
                ("trainer.epocs=3", "Could not override 'trainer.epocs'"),
                ("+trainer.epochs=3", "An item is already at 'trainer.epochs'"),
                ("foo", "Error parsing override 'foo'")]


@pytest.mark.parametrize("config", ["train", "eval", "retrieve"])
@pytest.mark.parametrize("override,needle", HYDRA_ERRORS, ids=[o for o, _ in HYDRA_ERRORS])
def test_hydras_command_line_errors_are_user_errors(config, override, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)):
        check_command_line(config, [override])


@pytest.mark.parametrize("script,error", zip(["train.py", "eval.py", "retrieve.py"], HYDRA_ERRORS[:3]))
def test_hydras_command_line_errors_are_one_block_and_exit_2(script, error, tmp_path):
    override, needle = error
    run = cli if script == "train.py" else main_in_process  # one real process: its exit status is 2, not Hydra's 1
    proc = run(script, override, f"hydra.run.dir={tmp_path / 'run'}")
    assert_one_block(proc, "the command line cannot be composed", needle)
    assert not (tmp_path / "run").exists()


SCRIPTS = sorted(p.name for p in (Path(__file__).resolve().parents[2] / "scripts").glob("*.py"))
# Scripts another test of the default suite runs in a real process: their bad argument is checked
# in this interpreter (the script's own __main__ up to Hydra's main). The others start one here.
RUN_ELSEWHERE = {
    "check_videos.py": "tests/test_docs.py, README 'Your own videos'",
    "dataset_stats.py": "tests/tools/test_data_tools.py",
    "export_hf.py": "tests/library/models/test_hf_export.py",
    "make_table.py": "tests/tools/test_tables.py",
    "prepare_data.py": "test_cli_prepare_data_error_is_one_block above",
    "rescore.py": "tests/tools/test_rescore.py",
}


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_reports_a_bad_argument_as_one_block(script, tmp_path):
    source = (Path(__file__).resolve().parents[2] / "scripts" / script).read_text()
    bad = "no_such_key=1" if "hydra.main" in source else "--no-such-flag"
    run = main_in_process if script in RUN_ELSEWHERE else cli
    proc = run(f"scripts/{script}", bad, cwd=tmp_path)
    assert_one_block(proc, "no_such_key" if "hydra.main" in source else "(usage: ")  # argparse: its usage line
    assert not list(tmp_path.iterdir())  # nothing written where it ran


def test_a_multirun_sweep_is_composed_with_its_first_values():
    check_command_line("train", ["-m", "method=bias,full", "trainer.epochs=1,2"])
    with pytest.raises(ConfigError, match="Could not override 'trainer.epocs'"):
        check_command_line("train", ["--multirun", "method=bias,full", "trainer.epocs=1,2"])
    check_command_line("train", ["--cfg", "job", "trainer.epocs=1"])  # Hydra's flags: left to Hydra


@pytest.mark.parametrize("script", ["train.py", "eval.py"])
def test_a_refused_run_leaves_no_run_folder(script, tmp_path):
    proc = cli(script, "data.batch_size=abc", f"paths.log_dir={tmp_path / 'logs'}")
    assert_one_block(proc, "data.batch_size=abc is not allowed")
    assert not list((tmp_path / "logs").rglob("*.yaml"))  # Hydra's folder for it is gone


def test_a_refused_run_keeps_a_used_folder(tmp_path):
    """`hydra.run.dir=<a folder of the user's>`: what Hydra wrote at start is there beside the user's
    file (as in the process above), and the refusal leaves the folder as it is."""
    used = tmp_path / "used"
    (used / ".hydra").mkdir(parents=True)
    for name in HYDRA_FILES:
        (used / ".hydra" / name).write_text("{}")
    (used / "train.log").write_text("")
    (used / "notes.txt").write_text("mine")
    cfg = compose_cfg("train", ["data.batch_size=abc"], tmp_path)

    def refused_run() -> None:
        with no_folder_if_refused(used, "train.log"):  # as train.py's main runs the command
            train(cfg)

    assert_one_block(in_process(refused_run), "data.batch_size=abc is not allowed")
    assert (used / "notes.txt").read_text() == "mine"  # a folder with anything else in it stays
    assert sorted(p.name for p in (used / ".hydra").iterdir()) == sorted(HYDRA_FILES)


@pytest.mark.parametrize("text", ["un café, s'il vous plaît", "猫がソファに飛び乗る", 'a "quoted" word', "back\\slash\\",
                                  "x ${oc.env:HOME}", "[not, a list", "a, b"])
def test_any_query_text_reaches_the_config_exactly(text, tmp_path):
    [arg] = quoted_free_text([f"query={text}"])  # as the shell leaves `query="<text>"`
    cfg = compose_cfg("retrieve", [arg, "gallery=g"], tmp_path)
    assert cfg.query == text
    assert quoted_free_text(["query=[a,b]", "topk=3"]) == ["query=[a,b]", "topk=3"]  # a list stays a list


@pytest.mark.parametrize("script, bad", [("train.py", "method=bais"), ("eval.py", "trainer.epocs=3"),
                                         ("retrieve.py", "serve.prot=1")])
def test_a_typo_is_answered_before_torch_or_transformers_load(script, bad):
    """The entry points check the command line first: a typo costs Hydra's composition (~0.5 s), not
    the ~9 s of importing torch and transformers."""
    code = ("import runpy, sys\n"
            f"sys.argv = [{script!r}, {bad!r}]\n"
            "try:\n"
            f"    runpy.run_path({script!r}, run_name='__main__')\n"
            "except SystemExit as stop:\n"
            "    print('exit', stop.code, 'torch' in sys.modules, 'transformers' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["exit", "2", "False", "False"], proc.stderr[-2000:]
    assert "Error: " in proc.stderr
