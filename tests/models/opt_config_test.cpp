// The published OPT shapes, and parameter counts that match HF's num_parameters() for the same models.
#include "test_util.hpp"

#include "models/opt/opt_layers.hpp"

namespace flexrt::test {
namespace {

struct Expected {
    const char* name;
    int64_t layers, heads, hidden, head_dim, ffn;
    uint64_t parameters;  // HF OPTForCausalLM(...).num_parameters(); 0 = not checked
};

TEST(OptConfig, PublishedShapes) {
    const Expected table[] = {
        {"opt-125m", 12, 12, 768, 64, 3072, 125239296ull},
        {"opt-350m", 24, 16, 1024, 64, 4096, 331196416ull},
        {"opt-1.3b", 24, 32, 2048, 64, 8192, 1315758080ull},
        {"opt-2.7b", 32, 32, 2560, 80, 10240, 2651596800ull},
        {"opt-6.7b", 32, 32, 4096, 128, 16384, 6658473984ull},
        {"opt-13b", 40, 40, 5120, 128, 20480, 12853473280ull},
        {"opt-30b", 48, 56, 7168, 128, 28672, 0},
        {"opt-66b", 64, 72, 9216, 128, 36864, 0},
        {"opt-175b", 96, 96, 12288, 128, 49152, 0},
    };
    for (const auto& e : table) {
        const opt::OptConfig c = opt::opt_config(e.name);
        EXPECT_EQ(c.num_layers, e.layers) << e.name;
        EXPECT_EQ(c.num_heads, e.heads) << e.name;
        EXPECT_EQ(c.hidden_size, e.hidden) << e.name;
        EXPECT_EQ(c.head_dim(), e.head_dim) << e.name;
        EXPECT_EQ(c.ffn_size, e.ffn) << e.name;
        EXPECT_EQ(c.vocab_size, 50272) << e.name;
        if (e.parameters) { EXPECT_EQ(c.model_bytes() / 2, e.parameters) << e.name; }
        // The weight specs of the layer list hold every parameter once, plus the tied head's second copy.
        uint64_t specs = 0;
        for (const auto& layer : opt::build_layers(c, true))
            for (const auto& w : layer->weights()) specs += numel(w.shape);
        EXPECT_EQ(specs, c.model_bytes() / 2 + c.vocab_size * c.embed_dim()) << e.name;
    }
    EXPECT_EQ(opt::opt_config("opt-350m").embed_dim(), 512);
    EXPECT_FALSE(opt::opt_config("opt-350m").pre_layer_norm);
}

TEST(OptConfig, UnknownNameListsValidOnes) {
    try {
        opt::opt_config("opt-7b");
        FAIL();
    } catch (const Error& e) { EXPECT_NE(std::string(e.what()).find("opt-6.7b"), std::string::npos); }
}

TEST(OptConfig, LayerListShape) {
    const opt::OptConfig c = opt::opt_config("opt-175b");
    EXPECT_EQ(opt::build_layers(c, true).size(), 194u);  // FlexLLMGen's count with sep_layer
    EXPECT_EQ(opt::build_layers(c, false).size(), 98u);
}

TEST(OptConfig, CustomShapeIsValidated) {
    opt::OptConfig c = tiny_config();
    c.num_heads = 5;
    EXPECT_THROW(opt::validate(c), Error);
}

}  // namespace
}  // namespace flexrt::test
