/** Data sets xfer can build from public archives. */
export {
  CATS_VS_DOGS_ARCHIVE,
  type CatsVsDogsResult,
  type FetchCatsVsDogsOptions,
  fetchCatsVsDogs,
} from './cats-vs-dogs.js';
