// The frontend's whole flow with openapi-fetch over the committed openapi-typescript types,
// written as a frontend developer would. `make smoke` runs it against a live service:
//   BASE_URL=http://127.0.0.1:8000 TOKEN=<jwt for USER_ID> USER_ID='auth0|5f7c8ec7c33c6c004bbafe82' \
//     node dist/flows/openapi-fetch.js
import createClient from "openapi-fetch";

import type { components, paths } from "../../generated/task-operations";

type Task = components["schemas"]["Task"];

const baseUrl = process.env.BASE_URL ?? "http://127.0.0.1:8000";
// The token's subject, as the identity provider issued it; openapi-fetch percent-encodes it in
// paths, and the service's Location and Link spell it the same way.
const userId = process.env.USER_ID ?? "auth0|5f7c8ec7c33c6c004bbafe82";
const tasksUrl = `/users/${encodeURIComponent(userId)}/tasks`;
const headers: Record<string, string> = process.env.TOKEN
  ? { Authorization: `Bearer ${process.env.TOKEN}` }
  : {};

// A frontend honours 429 Too Many Requests: it waits as Retry-After says, then sends the request
// again (its budget per second is met by a script, not by a person).
async function fetchHonouringRetryAfter(request: Request): Promise<Response> {
  for (let attempt = 1; ; attempt++) {
    const response = await fetch(request.clone());
    if (response.status !== 429 || attempt === 5) {
      return response;
    }
    const seconds = Number(response.headers.get("Retry-After") ?? "1");
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  }
}

const client = createClient<paths>({ baseUrl, headers, fetch: fetchHonouringRetryAfter });
const path = { user_id: userId };

function check(condition: unknown, message: string): asserts condition {
  if (!condition) {
    throw new Error(`smoke: ${message}`);
  }
}

// Create with only a title: the rest takes its initial value. The Idempotency-Key makes the
// create safe to retry when its answer is lost.
const idempotencyKey = crypto.randomUUID();
const create = () =>
  client.POST("/users/{user_id}/tasks", {
    params: { path, header: { "Idempotency-Key": idempotencyKey } },
    body: { title: "Buy milk" },
  });
const created = await create();
check(created.data, `create answered ${created.response.status}`);
const milk: Task = created.data;
check(milk.is_completed === false && milk.completed_at === null, "a new task is open");
check(created.response.headers.get("Location") === `${tasksUrl}/${milk.id}`, "Location");
const retried = await create();
check(retried.response.headers.get("Idempotent-Replayed") === "true", "the retry is a replay");
check(retried.data?.id === milk.id, "the retry made no second task");
const milkTag = created.response.headers.get("ETag");
check(milkTag !== null, "ETag");

// Read again only if it changed.
const unchanged = await client.GET("/users/{user_id}/tasks/{task_id}", {
  params: { path: { ...path, task_id: milk.id }, header: { "If-None-Match": milkTag } },
});
check(unchanged.response.status === 304, `If-None-Match answered ${unchanged.response.status}`);

for (const title of ["Walk the dog", "Water the plants"]) {
  const more = await client.POST("/users/{user_id}/tasks", {
    params: { path },
    body: { title, description: `${title}, today`, is_completed: true },
  });
  check(more.response.status === 201, "create a completed task");
}

// List with a filter, one task a page, following Link until it is absent.
const done: Task[] = [];
let page = await client.GET("/users/{user_id}/tasks", {
  params: { path, query: { completed: true, limit: 1 } },
});
for (;;) {
  check(page.data, `list answered ${page.response.status}`);
  done.push(...page.data);
  const link = page.response.headers.get("Link");
  const next = link?.match(/^<([^>]+)>; rel="next"$/)?.[1];
  if (next === undefined) {
    break;
  }
  // Link is relative to the API's base URL; its query carries the filter and the cursor.
  const nextUrl = new URL(next, baseUrl);
  check(nextUrl.pathname === tasksUrl, `Link names the user's tasks: ${next}`);
  const query = Object.fromEntries(nextUrl.searchParams);
  page = await client.GET("/users/{user_id}/tasks", {
    params: {
      path,
      query: {
        completed: query.completed === "true",
        limit: Number(query.limit),
        cursor: query.cursor,
      },
    },
  });
}
check(done.length === 2 && done.every((task) => task.is_completed), "two completed tasks");
const first = done[0];
check(first !== undefined && first.title === "Walk the dog", "in creation order");

// Patch some fields; null clears the description.
const patched = await client.PATCH("/users/{user_id}/tasks/{task_id}", {
  params: { path: { ...path, task_id: first.id } },
  body: { title: "Walk the dog twice", description: null },
});
check(patched.data?.title === "Walk the dog twice" && patched.data.description === null, "patch");

// Toggle completion, only over the version read; a second writer with the same ETag loses.
const toggled = await client.PATCH("/users/{user_id}/tasks/{task_id}/complete", {
  params: { path: { ...path, task_id: milk.id }, header: { "If-Match": milkTag } },
});
check(toggled.data?.is_completed === true && toggled.data.completed_at !== null, "toggle");
const lost = await client.PATCH("/users/{user_id}/tasks/{task_id}", {
  params: { path: { ...path, task_id: milk.id }, header: { "If-Match": milkTag } },
  body: { title: "Buy oat milk" },
});
check(lost.error?.status === 412, `a stale If-Match answered ${lost.response.status}`);

// Delete, then read the 404 as a typed problem.
const deleted = await client.DELETE("/users/{user_id}/tasks/{task_id}", {
  params: { path: { ...path, task_id: milk.id } },
});
check(deleted.response.status === 204, `delete answered ${deleted.response.status}`);
const gone = await client.GET("/users/{user_id}/tasks/{task_id}", {
  params: { path: { ...path, task_id: milk.id } },
});
check(gone.error?.status === 404 && gone.error.title === "Not Found", "404 problem");
check(gone.response.headers.get("Content-Type") === "application/problem+json", "problem+json");

// Search, newest first: the Link of a search keeps the search.
const searched = await client.GET("/users/{user_id}/tasks", {
  params: { path, query: { q: "WATER", order: "newest", limit: 1 } },
});
check(searched.data?.[0]?.title === "Water the plants", "search ignores case");
check(searched.response.headers.get("Link") === null, "one match, one page");

// "N items left", "mark all as complete", "clear completed".
const counts = await client.GET("/users/{user_id}/tasks/counts", { params: { path } });
check(counts.data?.total === 2 && counts.data.open === 0, `counts ${JSON.stringify(counts.data)}`);
const reopened = await client.PATCH("/users/{user_id}/tasks", {
  params: { path },
  body: { is_completed: false },
});
check(reopened.data?.updated === 2, "reopen all");
const completedAll = await client.PATCH("/users/{user_id}/tasks", {
  params: { path },
  body: { is_completed: true },
});
check(completedAll.data?.updated === 2, "complete all");
const cleared = await client.DELETE("/users/{user_id}/tasks", {
  params: { path, query: { completed: true } },
});
check(cleared.data?.deleted === 2, "clear completed");
const left = await client.GET("/users/{user_id}/tasks/counts", { params: { path } });
check(left.data?.total === 0, "nothing left");

// A 422 names each offending field.
const invalid = await client.POST("/users/{user_id}/tasks", {
  params: { path },
  body: { title: "" },
});
const problem = invalid.error;
check(problem !== undefined && "errors" in problem, `422 expected, got ${invalid.response.status}`);
check(problem.title === "Unprocessable Content", "RFC 9110's title");
check(problem.errors[0]?.field === "title" && problem.errors[0].location === "body", "field");

console.log(`smoke: the openapi-fetch flow passed against ${baseUrl}`);
