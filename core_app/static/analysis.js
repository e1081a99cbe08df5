// The conversation analyses (POST /v1/analyze): a summary in words, activity as bars per day, sentiment as a
// line over the messages.

import { barChart, lineChart } from "./charts.js";
import { text } from "./dom.js";

const DAY_MS = 86_400_000;
const MAX_FILLED_DAYS = 92; // beyond that, only the days with messages get a bar


/** Every day from the first to the last with messages, the quiet ones at 0, while that stays readable. */
function days(byDay) {
  if (byDay.length < 2) return byDay;
  const start = Date.parse(`${byDay[0].date}T00:00:00Z`);
  const end = Date.parse(`${byDay[byDay.length - 1].date}T00:00:00Z`);
  if ((end - start) / DAY_MS > MAX_FILLED_DAYS) return byDay;
  const counts = new Map(byDay.map((day) => [day.date, day.messages]));
  const filled = [];
  for (let moment = start; moment <= end; moment += DAY_MS) {
    const date = new Date(moment).toISOString().slice(0, 10);
    filled.push({ date, messages: counts.get(date) ?? 0 });
  }
  return filled;
}

function section(title, ...content) {
  const part = document.createElement("section");
  part.className = "analysis-part";
  part.append(text("h3", "", title), ...content);
  return part;
}

function failed(title, outcome) {
  return section(title, text("p", "problem", `Not available: ${outcome.reason?.explain?.() ?? outcome.reason}`));
}

function summaryPart(outcome) {
  if (outcome.status === "rejected") return failed("Summary", outcome);
  const results = outcome.value.results;
  return section("Summary", text("p", "", results.summary || "Nothing to summarise yet."));
}

function activityPart(outcome) {
  if (outcome.status === "rejected") return failed("Activity", outcome);
  const results = outcome.value.results;
  const points = days(results.by_day).map((day) => ({
    label: day.date.slice(5), value: day.messages, detail: `${day.date}: ${day.messages} messages`,
  }));
  const reply = results.average_reply_seconds == null ? ""
    : `; replies came after ${results.average_reply_seconds.toFixed(1)} s on average`;
  return section("Activity",
    barChart("Messages per day", points),
    text("p", "caption", `${results.message_count} messages, ${results.word_count} words${reply}.`));
}

function sentimentPart(outcome) {
  if (outcome.status === "rejected") return failed("Sentiment", outcome);
  const results = outcome.value.results;
  const points = results.by_message.map((entry) => ({
    x: entry.sequence, value: entry.score,
    detail: `message #${entry.sequence} (${entry.role}): ${entry.label}, ${entry.score}`,
  }));
  return section("Sentiment",
    lineChart("Sentiment of each message, from −1 (negative) to +1 (positive)", points),
    text("p", "caption", `Overall ${results.label} (${results.score}).`));
}

/** Run the analyses of a conversation and draw them in `panel`; `isCurrent` says whether it is still wanted. */
export async function showAnalyses(api, conversationId, panel, isCurrent) {
  panel.replaceChildren(text("p", "caption", "Analysing…"));
  const outcomes = await Promise.allSettled(["summary", "activity", "sentiment"]
    .map((type) => api.analyze(conversationId, type)));
  if (!isCurrent()) return;
  const parts = [summaryPart(outcomes[0]), activityPart(outcomes[1]), sentimentPart(outcomes[2])];
  if (outcomes.some((outcome) => outcome.value?.truncated)) {
    parts.push(text("p", "caption", "Only the latest messages were analysed."));
  }
  panel.replaceChildren(...parts);
}
