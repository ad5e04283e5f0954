// The same flow with orval at its defaults: its axios client (type-checked only).
import axios from "axios";

import {
  countTasks,
  createTask,
  getTask,
  listTasks,
  setAllTasksCompletion,
  type Problem,
  type Task,
  type ValidationProblem,
} from "../.build/orval-axios/api";

axios.defaults.baseURL = "https://tasks.example";
axios.defaults.headers.common.Authorization = "Bearer a-token";
// orval puts path parameters into its URLs as they are: `someone%40example.com`, encoded as
// every generated client that encodes spells it (the service reads `@` and `%40` alike).
const userId = encodeURIComponent("someone@example.com");

export async function flow(): Promise<Task[]> {
  const { data: task, headers } = await createTask(userId, { title: "Buy milk" });
  const location: unknown = headers["location"];

  const { data: done } = await listTasks(userId, { completed: true, order: "newest", limit: 10 });
  const first: Task | undefined = done[0];
  const left: number = (await countTasks(userId)).data.open;
  const updated: number = (await setAllTasksCompletion(userId, { is_completed: true })).data.updated;

  try {
    await getTask(userId, task.id);
  } catch (error) {
    if (axios.isAxiosError<Problem>(error) && error.response?.status === 404) {
      const detail: string = error.response.data.detail;
      console.log(detail);
    }
  }
  try {
    await createTask(userId, { title: "" });
  } catch (error) {
    if (axios.isAxiosError<ValidationProblem>(error) && error.response?.status === 422) {
      const field: string | undefined = error.response.data.errors[0]?.field;
      console.log(field);
    }
  }
  console.log(location, left, updated);
  return first === undefined ? [] : [first];
}
