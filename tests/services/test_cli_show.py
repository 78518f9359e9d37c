"""``corral show``'s default screen, checked against the layouts in Ollama's own cmd tests."""

from services.cli.show import show_info


def test_model_section_from_model_info():
    text = show_info({
        "model_info": {"general.architecture": "test", "general.parameter_count": 7_000_000_000,
                       "test.context_length": 0, "test.embedding_length": 0},
        "details": {"family": "test", "parameter_size": "7B", "quantization_level": "FP16"},
    })
    assert text == ("  Model\n"
                    "    architecture        test    \n"
                    "    parameters          7B      \n"
                    "    context length      0       \n"
                    "    embedding length    0       \n"
                    "    quantization        FP16    \n"
                    "\n")


def test_verbose_adds_metadata_and_tensors():
    text = show_info({
        "details": {"family": "test", "parameter_size": "8B", "quantization_level": "FP16"},
        "parameters": "\n\t\t\tstop up",
        "model_info": {"general.architecture": "test", "general.parameter_count": 8_000_000_000,
                       "some.true_bool": True, "some.false_bool": False,
                       "test.context_length": 1000, "test.embedding_length": 11434},
        "tensors": [{"name": "blk.0.attn_k.weight", "type": "BF16", "shape": [42, 3117]},
                    {"name": "blk.0.attn_q.weight", "type": "FP16", "shape": [3117, 42]}],
    }, verbose=True)
    assert text == ("  Model\n"
                    "    architecture        test     \n"
                    "    parameters          8B       \n"
                    "    context length      1000     \n"
                    "    embedding length    11434    \n"
                    "    quantization        FP16     \n"
                    "\n"
                    "  Parameters\n"
                    "    stop    up    \n"
                    "\n"
                    "  Metadata\n"
                    "    general.architecture       test     \n"
                    "    general.parameter_count    8e+09    \n"
                    "    some.false_bool            false    \n"
                    "    some.true_bool             true     \n"
                    "    test.context_length        1000     \n"
                    "    test.embedding_length      11434    \n"
                    "\n"
                    "  Tensors\n"
                    "    blk.0.attn_k.weight    BF16    [42 3117]    \n"
                    "    blk.0.attn_q.weight    FP16    [3117 42]    \n"
                    "\n")


def test_capabilities_parameters_system_and_license_sections():
    text = show_info({
        "details": {"family": "llama", "parameter_size": "135M", "quantization_level": "Q4_1"},
        "capabilities": ["completion", "tools"],
        "parameters": 'stop                           "<|im_end|>"\ntemperature                    0.2',
        "system": "You are helpful.\n\nBe brief.\nThird line.",
        "license": "MIT",
    })
    assert "  Capabilities\n    completion    \n    tools         \n\n" in text
    assert '  Parameters\n    stop           "<|im_end|>"    \n    temperature    0.2             \n\n' in text
    assert "  System\n    You are helpful.    \n    Be brief.           \n    ...                 \n\n" in text
    assert text.endswith("  License\n    MIT    \n\n")


def test_metadata_lists_are_cut_short():
    text = show_info({"details": {}, "model_info": {"tokenizer.ggml.tokens": ["a", "bb", "ccc", "dddd", "e"]}},
                     verbose=True)
    assert "tokenizer.ggml.tokens    [a bb ...+3 more]" in text
