"""One train step on 8 simulated CPU devices (data 2 x fsdp 2 x tensor 2, or fsdp 8) equals the step on 1 device;
so do gradient accumulation and rematerialization; bfloat16 compute stays close; a frozen embedding stays put."""

from processes import run_program


def test_one_step_on_8_devices_equals_one_device(tmp_path):
    res = run_program("train_sharding", [tmp_path], devices=8, fast_compile=True, timeout=300)
    one = res["one"]
    # The 8-device runs really are sharded: FSDP over embed, tensor over heads/mlp/vocab.
    assert any("fsdp" in s and "tensor" in s for s in res["dft"]["shards"]), res["dft"]["shards"]
    assert any("fsdp" in s for s in res["fsdp"]["shards"]), res["fsdp"]["shards"]
    for name in ("dft", "fsdp", "accum", "remat"):
        r = res[name]
        assert abs(r["loss"] - one["loss"]) < 1e-5 * abs(one["loss"]), (name, r["loss"], one["loss"])
        assert max(abs(a - b) for a, b in zip(r["acc"], one["acc"])) < 1e-6, name
        assert abs(r["grad_norm"] - one["grad_norm"]) < 1e-5 * one["grad_norm"], name
        assert r["max_param_diff"] < 1e-3 * one["lr"], (name, r["max_param_diff"])
    # bfloat16 compute with float32 master weights: same step, within bf16 rounding.
    assert abs(res["bf16"]["loss"] - one["loss"]) < 2e-2 * one["loss"]
    assert abs(res["bf16"]["grad_norm"] - one["grad_norm"]) < 2e-2 * one["grad_norm"]
    assert res["bf16"]["dtypes"] == ["float32"]  # master weights stay float32
    assert one["max_param_diff"] == 0.0 and res["dft"]["max_param_diff"] < one["lr"]
    # model.freeze=[embed] with train_embed_rows=[5]: the table stays bit-identical (no update, no weight decay)
    # but for the mask token's row, which learns; the rest of the model still learns.
    assert one["embed_moved"] > 0 and one["rest_moved"] > 0
    assert res["frozen"]["embed_moved"] == 0.0 and res["frozen"]["rest_moved"] > 0
    assert res["frozen"]["rows_moved"] == [5]
    assert abs(res["frozen"]["loss"] - one["loss"]) < 1e-5 * abs(one["loss"])
