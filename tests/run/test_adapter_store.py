"""Publishing a finished run's adapter: beside the old one, switched by the record, the stable name last."""
from lora_repro import paths
from lora_repro.run import adapter_store


def staged(results, run_id, content):
    d = adapter_store.staged_dir(results, run_id)
    d.mkdir(parents=True)
    (d / "adapter.safetensors").write_text(content)
    return d


def test_publish_replaces_an_old_layout_dir_and_strays_and_keeps_the_staged_files(tmp_path):
    ckpt = paths.checkpoint_dir(tmp_path, "r1")
    (ckpt / "adapter").mkdir(parents=True)                       # a results dir from before versioned adapters
    (ckpt / "adapter" / "adapter.safetensors").write_text("old")
    (ckpt / "adapter.20200101T000000-abcdef").mkdir()            # a crashed promotion's stray version
    (ckpt / ".adapter.20200101T000000-123456.tmp").mkdir()       # ... and its temp dir
    src = staged(tmp_path, "r1", "new")
    final = adapter_store.promote(src, tmp_path, "r1")
    assert (ckpt / "adapter" / "adapter.safetensors").read_text() == "old"   # untouched until published
    adapter_store.publish(final, tmp_path, "r1")
    link = paths.adapter_dir(tmp_path, "r1")
    assert link.is_symlink() and link.resolve() == final.resolve()
    assert (link / "adapter.safetensors").read_text() == "new"
    assert sorted(p.name for p in ckpt.iterdir()) == sorted(["adapter", final.name, "state"])
    (src / "adapter.safetensors").unlink()                        # the state dir goes; the published copy stays
    assert (final / "adapter.safetensors").read_text() == "new"


def test_a_fresh_start_drops_an_adapter_staged_by_an_earlier_attempt(tmp_path):
    staged(tmp_path, "r1", "earlier")
    adapter_store.clear_stale_stage(tmp_path, "r1", resume=True)   # no state.pt: the run starts from step 0
    assert not adapter_store.staged_dir(tmp_path, "r1").exists()
    staged(tmp_path, "r1", "earlier")
    (paths.state_dir(tmp_path, "r1") / "state.pt").write_bytes(b"")
    adapter_store.clear_stale_stage(tmp_path, "r1", resume=True)   # resuming: the staged best adapter stays
    assert adapter_store.staged_dir(tmp_path, "r1").exists()
    adapter_store.clear_stale_stage(tmp_path, "r1", resume=False)
    assert not adapter_store.staged_dir(tmp_path, "r1").exists()
