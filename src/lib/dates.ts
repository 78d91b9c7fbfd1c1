const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * Java's default medium US format in server local time, no zone — what ZStack's Gson writes:
 * `MMM d, yyyy h:mm:ss a`, e.g. "Aug 23, 2022 4:31:36 PM".
 */
export function zstackDate(epochMs: number): string {
  const d = new Date(epochMs);
  const hours = d.getHours();
  const h12 = hours % 12 === 0 ? 12 : hours % 12;
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${MONTHS[d.getMonth()]} ${d.getDate()}, ${d.getFullYear()} ${h12}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${
    hours < 12 ? 'AM' : 'PM'
  }`;
}
