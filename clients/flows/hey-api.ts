// The same flow with @hey-api/openapi-ts's SDK at its default settings (type-checked only).
import { client } from "../.build/hey-api/client.gen";
import {
  countTasks,
  createTask,
  deleteTask,
  deleteTasks,
  getTask,
  listTasks,
  setAllTasksCompletion,
  toggleTaskCompletion,
  updateTask,
} from "../.build/hey-api/sdk.gen";
import type { Task } from "../.build/hey-api/types.gen";

client.setConfig({ baseUrl: "https://tasks.example", auth: () => "a-token" });
// The SDK percent-encodes path parameters: `google-oauth2%7C104356789012345678901` in the URL.
const path = { user_id: "google-oauth2|104356789012345678901" };

export async function flow(): Promise<Task[]> {
  const created = await createTask({ path, body: { title: "Buy milk" } });
  if (created.data === undefined) {
    throw new Error(`create answered ${created.response.status}`);
  }
  const task: Task = created.data;
  const location: string | null = created.response.headers.get("Location");

  const done = await listTasks({ path, query: { completed: true, limit: 10, order: "newest" } });
  const found = await listTasks({ path, query: { q: "milk" } });
  const left: number | undefined = (await countTasks({ path })).data?.open;
  const updated = (await setAllTasksCompletion({ path, body: { is_completed: true } })).data;
  const deleted = (await deleteTasks({ path, query: { completed: true } })).data?.deleted;
  console.log(found.data?.length, left, updated?.updated, deleted);
  const first: Task | undefined = done.data?.[0];
  const link: string | null = done.response.headers.get("Link");

  await updateTask({ path: { ...path, task_id: task.id }, body: { description: null } });
  await toggleTaskCompletion({ path: { ...path, task_id: task.id } });
  await deleteTask({ path: { ...path, task_id: task.id } });

  const gone = await getTask({ path: { ...path, task_id: task.id } });
  if (gone.error !== undefined) {
    const detail: string = gone.error.detail;
    const status: number = gone.error.status;
    console.log(status, detail);
  }
  const invalid = await createTask({ path, body: { title: "" } });
  if (invalid.error !== undefined && "errors" in invalid.error) {
    const field: string | undefined = invalid.error.errors[0]?.field;
    console.log(field);
  }
  console.log(location, link);
  return first === undefined ? [] : [first];
}
