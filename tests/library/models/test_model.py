"""The layer-by-layer CLIP wrapper computes exactly HF's CLIP features."""
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.helpers import CONFIG_DIR
from vop.models.clip import CLIPVideoModel, WeightsNotFoundError


@pytest.fixture(scope="module")
def tiny() -> CLIPVideoModel:
    model = instantiate(OmegaConf.load(f"{CONFIG_DIR}/model/clip_tiny.yaml").net)
    return model.eval()


def features(out):
    return out.pooler_output if hasattr(out, "pooler_output") else out


def test_frames_match_hf_image_features(tiny):
    pixels = torch.randn(6, 3, 224, 224)
    with torch.no_grad():
        ours = tiny.encode_frames(pixels, num_frames=3)
        ref = F.normalize(features(tiny.clip.get_image_features(pixel_values=pixels)), dim=-1)
    torch.testing.assert_close(ours, ref)


@pytest.mark.parametrize("pad", [0, 49407])
def test_text_matches_hf_text_features(tiny, pad):
    ids = torch.full((3, 16), pad)
    ids[:, 0] = 49406
    for row, length in enumerate([3, 9, 15]):
        ids[row, 1:length] = torch.randint(300, 40000, (length - 1,))
        ids[row, length] = 49407
    with torch.no_grad():
        ours = tiny.encode_text(ids)
        ref = F.normalize(features(tiny.clip.get_text_features(input_ids=ids)), dim=-1)
    torch.testing.assert_close(ours, ref)


def test_video_embedding_is_normalised_mean_of_frames(tiny):
    frames = torch.randn(2, 4, 3, 224, 224)
    with torch.no_grad():
        video = tiny.encode_video(frames)
        per_frame = tiny.encode_frames(frames.flatten(0, 1), 4).view(2, 4, -1)
    assert video.shape == (2, tiny.clip.config.projection_dim)
    torch.testing.assert_close(video, F.normalize(per_frame.mean(1), dim=-1))


def test_same_seed_same_weights():
    cfg = OmegaConf.load(f"{CONFIG_DIR}/model/clip_tiny.yaml").net
    a, b = instantiate(cfg), instantiate(cfg)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_missing_weights_name_the_path(tmp_path):
    missing = tmp_path / "no-such-clip"
    with pytest.raises(WeightsNotFoundError, match="no-such-clip"):
        CLIPVideoModel.from_pretrained(str(missing))
