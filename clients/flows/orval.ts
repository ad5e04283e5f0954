// The same flow with orval's fetch client at its default settings (type-checked only).
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
  type Task,
} from "../.build/orval/api";

const init: RequestInit = { headers: { Authorization: "Bearer a-token" } };
// orval puts path parameters into its URLs as they are: encode the id, as every URL must spell
// `|` (the service reads `auth0|…` and `auth0%7C…` alike).
const userId = encodeURIComponent("auth0|5f7c8ec7c33c6c004bbafe82");

export async function flow(): Promise<Task[]> {
  const created = await createTask(userId, { title: "Buy milk" }, init);
  if (created.status !== 201) {
    throw new Error(`create answered ${created.status}`);
  }
  const task: Task = created.data;
  const location: string | null = created.headers.get("Location");

  const done = await listTasks(userId, { completed: true, limit: 10, order: "newest" }, init);
  const found = await listTasks(userId, { q: "milk" }, init);
  const counts = await countTasks(userId, init);
  const left: number | undefined = counts.status === 200 ? counts.data.open : undefined;
  const updated = await setAllTasksCompletion(userId, { is_completed: true }, init);
  const deleted = await deleteTasks(userId, { completed: true }, init);
  if (updated.status === 200 && deleted.status === 200) {
    console.log(found.status, left, updated.data.updated, deleted.data.deleted);
  }
  const first: Task | undefined = done.status === 200 ? done.data[0] : undefined;
  const link: string | null = done.headers.get("Link");

  await updateTask(userId, task.id, { description: null }, init);
  await toggleTaskCompletion(userId, task.id, init);
  await deleteTask(userId, task.id, init);

  const gone = await getTask(userId, task.id, init);
  if (gone.status === 404) {
    const detail: string = gone.data.detail;
    console.log(detail);
  }
  const invalid = await createTask(userId, { title: "" }, init);
  if (invalid.status === 422) {
    const field: string | undefined = invalid.data.errors[0]?.field;
    console.log(field);
  }
  console.log(location, link);
  return first === undefined ? [] : [first];
}
