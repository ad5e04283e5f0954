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

export async function flow(): Promise<Task[]> {
  const created = await createTask("alice", { title: "Buy milk" }, init);
  if (created.status !== 201) {
    throw new Error(`create answered ${created.status}`);
  }
  const task: Task = created.data;
  const location: string | null = created.headers.get("Location");

  const done = await listTasks("alice", { completed: true, limit: 10, order: "newest" }, init);
  const found = await listTasks("alice", { q: "milk" }, init);
  const counts = await countTasks("alice", init);
  const left: number | undefined = counts.status === 200 ? counts.data.open : undefined;
  const updated = await setAllTasksCompletion("alice", { is_completed: true }, init);
  const deleted = await deleteTasks("alice", { completed: true }, init);
  if (updated.status === 200 && deleted.status === 200) {
    console.log(found.status, left, updated.data.updated, deleted.data.deleted);
  }
  const first: Task | undefined = done.status === 200 ? done.data[0] : undefined;
  const link: string | null = done.headers.get("Link");

  await updateTask("alice", task.id, { description: null }, init);
  await toggleTaskCompletion("alice", task.id, init);
  await deleteTask("alice", task.id, init);

  const gone = await getTask("alice", task.id, init);
  if (gone.status === 404) {
    const detail: string = gone.data.detail;
    console.log(detail);
  }
  const invalid = await createTask("alice", { title: "" }, init);
  if (invalid.status === 422) {
    const field: string | undefined = invalid.data.errors[0]?.field;
    console.log(field);
  }
  console.log(location, link);
  return first === undefined ? [] : [first];
}
