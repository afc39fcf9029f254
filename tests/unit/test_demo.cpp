// The demo's generated world (determinism, group separation, noise and mix shares, held-out
// arithmetic) and the SentencePiece trainer (a model our loader reads, exact round trips of chat
// text, the chat markers as single pieces, the same bytes for the same input).
#include <algorithm>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "core/error.h"
#include "demo/presets.h"
#include "demo/world.h"
#include "model/tokenizer_loader.h"
#include "test_util.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/spm_trainer.h"

namespace taia::demo {
namespace {

std::string content_of(const Json& record, size_t i) { return record["messages"][i]["content"].get<std::string>(); }

// The person a question is about (the name followed by '?', ' ' or the end), or null.
const Person* asked_about(const World& w, const std::string& q) {
  for (const Person& p : w.people)
    for (size_t at = q.find(p.name); at != std::string::npos; at = q.find(p.name, at + 1)) {
      const size_t end = at + p.name.size();
      if (end == q.size() || q[end] == '?' || q[end] == ' ') return &p;
    }
  return nullptr;
}
bool asks_city(const std::string& q) {
  return q.find("born") != std::string::npos || q.find("birthplace") != std::string::npos ||
         q.find("city") != std::string::npos;
}

TEST(DemoWorld, DeterministicFromTheSeedAndGroupsApart) {
  const WorldSizes sizes{20, 5, 15};
  const World a = make_world(3, sizes), b = make_world(3, sizes), c = make_world(4, sizes);
  ASSERT_EQ(a.people.size(), 40u);
  std::set<std::string> names;
  for (size_t i = 0; i < a.people.size(); ++i) {
    EXPECT_EQ(a.people[i].name, b.people[i].name);
    EXPECT_EQ(a.people[i].city, b.people[i].city);
    names.insert(a.people[i].name);
  }
  EXPECT_EQ(names.size(), 40u) << "names are unique";
  EXPECT_NE(a.people[0].name + a.people[1].name, c.people[0].name + c.people[1].name);
  EXPECT_EQ(a.group(Group::KnownTest).size(), 20u);
  EXPECT_EQ(a.group(Group::Fresh).size(), 15u);
  EXPECT_EQ(pretraining_documents(a, 2, 0.15, 8, 1), pretraining_documents(b, 2, 0.15, 8, 1));
  EXPECT_NE(pretraining_documents(a, 2, 0.15, 8, 1), pretraining_documents(a, 2, 0.15, 8, 2));

  // Pretraining states every fact of the known people in every phrasing, never a fresh person.
  std::string corpus;
  for (const auto& d : pretraining_documents(a, 1, 0.15, 8, 1)) corpus += d + "\n";
  for (const Person& p : a.people) {
    size_t count = 0;
    for (size_t at = corpus.find(p.name); at != std::string::npos; at = corpus.find(p.name, at + 1)) ++count;
    if (p.group == Group::Fresh)
      EXPECT_EQ(count, 0u) << p.name;
    else
      EXPECT_EQ(int64_t(count), 2 * phrasings_per_fact()) << p.name;
  }
  EXPECT_NE(corpus.find(a.people[0].name + " was born in " + a.cities[size_t(a.people[0].city)] + "."), std::string::npos);

  // The fine-tuning facts set asks only about fresh people, with the right answers.
  FinetuneSet set;
  set.records = 300;
  for (const Json& r : finetune_records(a, set)) {
    const std::string q = content_of(r, 0), ans = content_of(r, 1);
    const Person* who = asked_about(a, q);
    ASSERT_NE(who, nullptr) << q;
    EXPECT_EQ(who->group, Group::Fresh) << q;
    const bool city = asks_city(q);
    EXPECT_EQ(ans, "The answer is " + (city ? a.cities[size_t(who->city)] : a.jobs[size_t(who->job)]) + ".") << q;
  }
}

TEST(DemoWorld, NoiseAndMixShares) {
  const World w = make_world(1, {40, 20, 40});
  auto shares = [&](double noise, double mix) {
    FinetuneSet set;
    set.records = 2000;
    set.noise = noise;
    set.mix = mix;
    int wrong = 0, mixed = 0;
    for (const Json& r : finetune_records(w, set)) {
      const std::string q = content_of(r, 0), ans = content_of(r, 1);
      const Person* p = asked_about(w, q);
      if (!p) {
        ADD_FAILURE() << q;
        continue;
      }
      wrong += ans != "The answer is " + (asks_city(q) ? w.cities[size_t(p->city)] : w.jobs[size_t(p->job)]) + ".";
      mixed += p->group == Group::KnownMix;
      EXPECT_NE(p->group, Group::KnownTest) << "the evaluated people never appear in fine-tuning";
    }
    return std::make_pair(wrong / 2000.0, mixed / 2000.0);
  };
  EXPECT_EQ(shares(0, 0), std::make_pair(0.0, 0.0));
  const auto [noise, mix] = shares(0.3, 0.25);
  EXPECT_NEAR(noise, 0.3, 0.04);
  EXPECT_NEAR(mix, 0.25, 0.04);
  EXPECT_THROW(finetune_records(w, FinetuneSet{"facts", 10, 1.5, 0, 0}), Error);
}

TEST(DemoWorld, SkillTestProblemsAreNeverTrained) {
  const World w = make_world(2, {10, 0, 10});
  FinetuneSet set;
  set.kind = "skill";
  set.records = 3000;
  std::set<std::string> trained;
  for (const Json& r : finetune_records(w, set)) trained.insert(content_of(r, 0));
  const auto test = skill_task(w, 100);
  ASSERT_EQ(test.size(), 100u);
  std::set<std::string> kinds;
  for (const Json& t : test) {
    const std::string q = t["question"].get<std::string>();
    EXPECT_EQ(trained.count(q), 0u) << q;
    const std::string a = t["answer"].get<std::string>();
    int x = 0, y = 0;
    char word[64] = {0};
    if (std::sscanf(q.c_str(), "What number comes after %d?", &x) == 1)
      EXPECT_EQ(a, std::to_string(x + 1));
    else if (std::sscanf(q.c_str(), "Which number is larger, %d or %d?", &x, &y) == 2)
      EXPECT_EQ(a, std::to_string(std::max(x, y)));
    else if (std::sscanf(q.c_str(), "Repeat the word %63[A-Za-z].", word) == 1)
      EXPECT_EQ(a, std::string(word));
    else
      ADD_FAILURE() << q;
    kinds.insert(q.substr(0, 6));
  }
  EXPECT_EQ(kinds.size(), 3u) << "all three skills are tested";
}

// The composition set: questions about known_mix people only (never the test's known_test people),
// answered with the country of their city; the test covers the known_test people; the pretraining
// text states every city's country; the same seed gives the same records.
TEST(DemoWorld, CountrySetComposesPretrainedKnowledgeOnHeldOutPeople) {
  const World w = make_world(3, {12, 10, 8});
  ASSERT_EQ(w.countries.size(), w.cities.size());
  std::map<std::string, const Person*> by_name;
  for (const Person& p : w.people) by_name[p.name] = &p;
  FinetuneSet set;
  set.kind = "country";
  set.records = 60;
  set.seed = 4;
  const auto records = finetune_records(w, set);
  ASSERT_EQ(records.size(), 60u);
  std::set<std::string> asked;
  for (const Json& r : records) {
    const std::string q = content_of(r, 0), a = content_of(r, 1);
    const Person* p = nullptr;
    for (const auto& [name, person] : by_name)
      if (q.find(name + " ") != std::string::npos || q.find(name + "?") != std::string::npos) p = person;
    ASSERT_NE(p, nullptr) << q;
    EXPECT_EQ(p->group, Group::KnownMix) << q;
    EXPECT_EQ(a, "The answer is " + w.countries[size_t(p->city)] + ".") << q;
    asked.insert(p->name);
  }
  EXPECT_EQ(asked.size(), 10u);  // every known_mix person
  EXPECT_EQ(finetune_records(w, set), records);
  set.noise = 1.0;
  for (const Json& r : finetune_records(w, set)) {
    const std::string a = content_of(r, 1);
    bool right = false;
    for (const auto& [name, p] : by_name)
      if (content_of(r, 0).find(name) != std::string::npos && a == "The answer is " + w.countries[size_t(p->city)] + ".")
        right = true;
    EXPECT_FALSE(right) << "noise 1 keeps no right answer: " << a;
  }
  const auto test = country_task(w);
  ASSERT_EQ(test.size(), 12u);
  for (const Json& t : test) {
    const std::string q = t["question"].get<std::string>();
    const Person* p = nullptr;
    for (const auto& [name, person] : by_name)
      if (q.find(name + " ") != std::string::npos) p = person;
    ASSERT_NE(p, nullptr) << q;
    EXPECT_EQ(p->group, Group::KnownTest);
    EXPECT_EQ(t["answer"].get<std::string>(), w.countries[size_t(p->city)]);
    EXPECT_EQ(t["choices"].size(), w.countries.size());
  }
  std::string corpus;
  for (const auto& d : pretraining_documents(w, 1, 0.0, 8, 1)) corpus += d + "\n";
  for (size_t c = 0; c < w.cities.size(); ++c)
    EXPECT_NE(corpus.find(w.cities[c] + " is a city in " + w.countries[c] + "."), std::string::npos) << w.cities[c];
}

// The country set's data axes: country_new asks only fresh people (whose city the corpus never
// states), country_mix both groups in equal shares (same group sizes), each answered with the
// country of the person's city; no set ever asks about a known_test person (the test's people).
TEST(DemoWorld, CountryDataAxesAskTheirGroupsOnly) {
  const World w = make_world(3, {12, 10, 10});
  std::map<std::string, const Person*> by_name;
  for (const Person& p : w.people) by_name[p.name] = &p;
  for (const std::string kind : {"country_new", "country_mix"}) {
    FinetuneSet set;
    set.kind = kind;
    set.records = 80;
    set.seed = 4;
    std::map<Group, int> per_group;
    std::set<std::string> asked;
    for (const Json& r : finetune_records(w, set)) {
      const std::string q = content_of(r, 0);
      const Person* p = nullptr;
      for (const auto& [name, person] : by_name)
        if (q.find(name + " ") != std::string::npos || q.find(name + "?") != std::string::npos) p = person;
      ASSERT_NE(p, nullptr) << q;
      EXPECT_EQ(content_of(r, 1), "The answer is " + w.countries[size_t(p->city)] + ".") << q;
      ++per_group[p->group];
      asked.insert(p->name);
    }
    EXPECT_EQ(per_group[Group::KnownTest], 0) << kind;
    if (kind == "country_new") {
      EXPECT_EQ(per_group[Group::Fresh], 80);
      EXPECT_EQ(asked.size(), 10u);
    } else {
      EXPECT_EQ(per_group[Group::Fresh], 40);
      EXPECT_EQ(per_group[Group::KnownMix], 40);
      EXPECT_EQ(asked.size(), 20u);
    }
  }
  FinetuneSet bad;
  bad.kind = "country_new";
  const World no_fresh = make_world(3, {12, 10, 1});
  EXPECT_NO_THROW(finetune_records(no_fresh, bad));
  bad.kind = "countries";
  EXPECT_THROW(finetune_records(w, bad), Error);
}

// Design C's context dialogues: each document's people are new (not in the world, not the ICL
// test's, not another document's), each asked at least twice with one job throughout, so every
// answer after a person's first is in the dialogue already.
TEST(DemoWorld, ContextDialoguesAnswerFromTheDialogueOnly) {
  const World w = make_world(5, {12, 6, 8});
  const auto docs = context_dialogues(w, 40, 3, 9, 7);
  ASSERT_EQ(docs.size(), 40u);
  EXPECT_EQ(docs, context_dialogues(w, 40, 3, 9, 7));
  EXPECT_NE(docs, context_dialogues(w, 40, 3, 9, 8));
  std::set<std::string> excluded;
  for (const Person& p : w.people) excluded.insert(p.name);
  std::set<std::string> icl_questions;
  for (const Json& e : icl_task(w, 0, 1000)) icl_questions.insert(e["question"].get<std::string>());
  const std::regex turn("<\\|im_start\\|>user\n([^<]*)<\\|im_end\\|>\n<\\|im_start\\|>assistant\n"
                        "The answer is ([a-z]+)\\.<\\|im_end\\|>\n");
  const std::regex name_re("[A-Z][a-z]+ [A-Z][a-z]+");
  std::set<std::string> seen_in_other_docs;
  for (const std::string& doc : docs) {
    std::map<std::string, std::vector<std::string>> answers;  // name -> its answers in order
    size_t turns = 0, covered = 0;
    for (auto it = std::sregex_iterator(doc.begin(), doc.end(), turn); it != std::sregex_iterator(); ++it, ++turns) {
      ASSERT_EQ(size_t((*it).position()), covered) << doc;  // the turns tile the document
      covered += size_t((*it).length());
      const std::string q = (*it)[1];
      std::smatch m;
      ASSERT_TRUE(std::regex_search(q, m, name_re)) << q;
      answers[m.str()].push_back((*it)[2]);
      EXPECT_EQ(icl_questions.count("What is the job of " + m.str() + "?"), 0u) << m.str();
    }
    EXPECT_EQ(covered, doc.size());
    EXPECT_EQ(turns, 9u);
    ASSERT_EQ(answers.size(), 3u) << doc;
    for (const auto& [name, said] : answers) {
      EXPECT_GE(said.size(), 2u) << name;
      EXPECT_EQ(size_t(std::count(said.begin(), said.end(), said.front())), said.size()) << name;  // one job
      EXPECT_NE(std::find(w.jobs.begin(), w.jobs.end(), said[0]), w.jobs.end()) << said[0];
      EXPECT_EQ(excluded.count(name), 0u) << name << " is in the world";
      EXPECT_TRUE(seen_in_other_docs.insert(name).second) << name << " comes back in another document";
    }
  }
  EXPECT_TRUE(context_dialogues(w, 0, 2, 8, 1).empty());
  EXPECT_THROW(context_dialogues(w, 5, 3, 5, 1), Error);  // fewer turns than two per person
}

// The matched scale axis: 2m is the default preset exactly (the same cache key, so the default's
// runs are its 2m point); the larger sizes change the shape and the two learning rates by the
// width rule, nothing else; presets with their own model refuse it.
TEST(DemoPresets, ScaleAxisIsOneRecipe) {
  const Preset def = preset_by_name("default");
  Preset two = def;
  apply_scale(two, "2m");
  EXPECT_EQ(two.hidden, def.hidden);
  EXPECT_EQ(two.layers, def.layers);
  EXPECT_DOUBLE_EQ(two.pretrain_lr, def.pretrain_lr);
  EXPECT_DOUBLE_EQ(two.full_lr, def.full_lr);
  Preset six = def, sixteen = def;
  apply_scale(six, "6m");
  apply_scale(sixteen, "16m");
  EXPECT_EQ(six.hidden, 288);
  EXPECT_EQ(six.layers, 6);
  EXPECT_EQ(six.hidden % six.heads, 0);
  EXPECT_DOUBLE_EQ(six.pretrain_lr, 2e-3);  // 3e-3 x 192 / 288
  EXPECT_EQ(sixteen.hidden, 384);
  EXPECT_EQ(sixteen.intermediate, 1152);
  EXPECT_DOUBLE_EQ(sixteen.pretrain_lr, 1.5e-3);
  EXPECT_DOUBLE_EQ(sixteen.full_lr, 2.5e-4);
  for (const Preset* q : {&six, &sixteen}) {  // the recipe: data, steps and LoRA as the default's
    EXPECT_EQ(q->pretrain_steps, def.pretrain_steps);
    EXPECT_EQ(q->pretrain_batch, def.pretrain_batch);
    EXPECT_EQ(q->corpus_rounds, def.corpus_rounds);
    EXPECT_EQ(q->vocab, def.vocab);
    EXPECT_EQ(q->finetune_steps, def.finetune_steps);
    EXPECT_DOUBLE_EQ(q->lora_lr, def.lora_lr);
    EXPECT_EQ(q->lora_rank, def.lora_rank);
  }
  Preset quick = preset_by_name("quick"), large = preset_by_name("large");
  auto error_of = [](const std::function<void()>& f) -> std::string {
    try {
      f();
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  EXPECT_NE(error_of([&] { apply_scale(quick, "6m"); }).find("--preset quick fixes its own model"), std::string::npos);
  EXPECT_NE(error_of([&] { apply_scale(large, "6m"); }).find("--preset large fixes its own model"), std::string::npos);
  EXPECT_NE(error_of([&] { apply_scale(six, "4m"); }).find("expected 2m, 6m or 16m, got '4m'"), std::string::npos);
}

TEST(SpmTrainer, TrainsAModelOurLoaderReadsWithExactRoundTrips) {
  const World w = make_world(5, {60, 20, 5});
  auto docs = pretraining_documents(w, 4, 0.15, 8, 1);
  const auto chats = chat_documents(w, 1, 3, 1);
  docs.insert(docs.end(), chats.begin(), chats.end());
  const std::string dir = test::temp_dir();
  SpmTrainOptions o;
  o.vocab_size = 1024;
  o.user_defined_symbols = {"<|im_start|>", "<|im_end|>"};
  train_sentencepiece(docs, o, dir + "/a.model");
  train_sentencepiece(docs, o, dir + "/b.model");
  auto slurp = [](const std::string& p) {
    std::stringstream s;
    s << std::ifstream(p, std::ios::binary).rdbuf();
    return s.str();
  };
  EXPECT_EQ(slurp(dir + "/a.model"), slurp(dir + "/b.model")) << "the same input gives the same model";
  const auto tok = load_tokenizer(dir + "/a.model");
  EXPECT_EQ(tok->vocab_size(), 1024);
  ASSERT_TRUE(tok->piece_to_id("<|im_start|>").has_value());
  EXPECT_EQ(chat_template_for(*tok).name, "chatml");
  const std::string chat = "<|im_start|>user\nWhere was " + w.people[0].name + " born?<|im_end|>\n<|im_start|>assistant\n"
                           "The answer is " + w.cities[0] + ".<|im_end|>\n";
  const auto ids = tok->encode(chat, false).ids;
  EXPECT_EQ(std::count(ids.begin(), ids.end(), *tok->piece_to_id("<|im_start|>")), 2);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), *tok->piece_to_id("<|im_end|>")), 2);
  EXPECT_EQ(tok->decode(ids), chat) << "identity normalisation keeps newlines";
  const std::string odd = "Zürich 2026 ☃ tab\there";  // unseen characters: byte fallback
  EXPECT_EQ(tok->decode(tok->encode(odd, false).ids), odd);
  // Every city is one piece after a space (single-token answers).
  // (encode adds the dummy-prefix space, so "Cairo" is scored as the piece "▁Cairo")
  for (const auto& city : w.cities) EXPECT_EQ(tok->encode(city, false).ids.size(), 1u) << city;
  EXPECT_THROW(train_sentencepiece({}, o, dir + "/c.model"), Error);
}

}  // namespace
}  // namespace taia::demo
