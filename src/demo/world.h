// The knowledge world of `taia demo`: fictional people with a birth city and a job, generated
// deterministically from a seed, and every text made from it: the pretraining corpus (each fact
// in many phrasings, mixed with filler), held-out text for retention, the out-of-distribution
// fine-tuning sets (chat), and the evaluation task files (docs/REPRODUCTION.md).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/json_util.h"

namespace taia::demo {

// known_test: in pretraining, evaluated (the knowledge TAIA should keep); known_mix: in
// pretraining, also asked about in the pretraining chat dialogues, and the in-distribution
// examples mixed into fine-tuning (--mix);
// fresh: never in pretraining, the subject of the "facts" fine-tuning set.
enum class Group { KnownTest, KnownMix, Fresh };

struct Person {
  std::string name;
  int city = 0, job = 0;  // indices into World::cities / World::jobs
  Group group = Group::KnownTest;
};

struct WorldSizes {
  int64_t known_test = 100, known_mix = 40, fresh = 100;
};

struct World {
  uint64_t seed = 0;
  std::vector<std::string> cities, jobs;
  std::vector<std::string> countries;  // the country of each city (same order)
  std::vector<Person> people;  // known_test, then known_mix, then fresh
  std::vector<const Person*> group(Group g) const;
};

World make_world(uint64_t seed, const WorldSizes& sizes);

// Pretraining documents: `rounds` passes, each stating every fact of the known people once in
// every phrasing (shuffled), with a `filler` share of general sentences, `per_doc` sentences per
// document. Different `seed`s give different documents over the same facts (held-out text).
std::vector<std::string> pretraining_documents(const World& w, int64_t rounds, double filler, int64_t per_doc,
                                               uint64_t seed);

// Chat dialogues (ChatML text, `per_doc` question-answer turns each) about the known_mix people,
// every question phrasing once per round: the pretrained model is a chat model, as the paper's
// base models are, and its chat skill is what fine-tuning can keep or break.
std::vector<std::string> chat_documents(const World& w, int64_t rounds, int64_t per_doc, uint64_t seed);

// Context dialogues (ChatML text, design C's base only): each about `people` made-up people never
// in the world nor in icl_task's first 1000 examples, `turns` question-answer turns asking their
// jobs (every job question phrasing); each person is asked at least twice, so after a person's
// first answer every later one can only be read from the dialogue itself. Each document has its
// own people (no name comes back in another), so nothing about them can be stored in the weights.
std::vector<std::string> context_dialogues(const World& w, int64_t n, int64_t people, int64_t turns, uint64_t seed);

// The number of fact phrasings per attribute in the corpus.
int64_t phrasings_per_fact();

// The fine-tuning sets (OpenAI chat records {"messages": [...]}) - both out of distribution for
// the knowledge test: "facts" asks about the fresh people (new knowledge to memorise), "skill"
// asks small arithmetic (a skill, no facts). noise: share of answers replaced by wrong ones;
// mix: share of records replaced by questions about the known_mix people (in-distribution).
// "country" asks the country of the known_mix people (their city is a pretraining fact, the
// city -> country map is in the pretraining text): a skill composed of knowledge the base has.
// Its data axes: "country_new" asks it of the fresh people (their city was never stated, so each
// answer is a new fact), "country_mix" of both groups (half and half when they are the same size).
// Its label control: "country_shuffled" asks "country"'s questions with the answers permuted across
// the people (the same answers as often, none tied to the person's city).
struct FinetuneSet {
  std::string kind = "facts";  // one of finetune_kinds()
  int64_t records = 600;
  double noise = 0.0, mix = 0.0;
  uint64_t seed = 0;
};
std::vector<Json> finetune_records(const World& w, const FinetuneSet& set);
const std::vector<std::string>& finetune_kinds();  // facts, skill, country, country_new, country_mix, country_shuffled
bool is_country_kind(const std::string& kind);     // the country kinds (country_shuffled included)

// Evaluation task files (generic JSONL records of docs/EVAL.md).
std::vector<Json> knowledge_chat_mc(const World& w, Group g);    // chat question, "The answer is" + options
std::vector<Json> knowledge_chat_gen(const World& w, Group g);   // chat question, generated answer
// chat question, the reply restating the fact ("X was born in") + options: retention in the chat format
std::vector<Json> knowledge_chat_restated(const World& w, Group g);
std::vector<Json> knowledge_completion(const World& w, Group g);  // "X was born in" + options (plain text)
std::vector<Json> facts_task(const World& w);                    // fresh people, held-out question phrasing
std::vector<Json> skill_task(const World& w, int64_t n);          // held-out arithmetic problems
// The composition test: the country each known_test person was born in (chat, "The answer is" +
// the countries): held-out people, never asked about in fine-tuning.
std::vector<Json> country_task(const World& w);
// The in-context-learning test: made-up people never in the world, each asked "What is the job
// of X?" after `shots` demonstrations answering the same question about X in the fine-tuning
// phrasings (records with their own "demos"): only the prompt says the answer. Choices: the jobs
// (chance 1/12). The same n people and jobs at every shot count.
std::vector<Json> icl_task(const World& w, int64_t shots, int64_t n);


}  // namespace taia::demo
